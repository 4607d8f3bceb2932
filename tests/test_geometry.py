import dataclasses

import numpy as np
import pytest

from tomoconsensus.ct.protocol import geometry_from_toml_text, load_geometry
from tomoconsensus.errors import InputError
from tomoconsensus.tomo.geometry import GEOMETRY_DIR, FanBeamGeometry, geometry_to_toml


@pytest.mark.parametrize("name", sorted(p.stem for p in GEOMETRY_DIR.glob("*.toml")))
def test_every_shipped_geometry_loads_and_round_trips(name):
    geom = load_geometry(name)
    assert geom.name == name
    assert geometry_from_toml_text(geometry_to_toml(geom)) == geom


def test_ldct_geometry_matches_the_scanner():
    geom = load_geometry("ldct-fanbeam")
    assert (geom.n_views, geom.n_detectors, geom.image_size) == (2304, 736, 512)
    assert geom.source_to_origin_mm == 595.0 and geom.source_to_detector_mm == 1085.6
    assert geom.detector_pitch_mm == pytest.approx(1.2858)
    assert geom.detector_shape == "curved"
    # equiangular: 736 arcs of 1.2858 mm at 1085.6 mm -> 49.95 deg fan, 251.2 mm field of view
    assert geom.fan_angle_deg == pytest.approx(49.95, abs=0.01)
    assert geom.fov_radius_mm == pytest.approx(251.2, abs=0.1)
    gammas = geom.channel_fan_angles_rad()
    assert np.allclose(np.diff(gammas), 1.2858 / 1085.6)
    # the demo geometry keeps the aperture of the scanner as a flat detector (47.1 deg)
    flat = dataclasses.replace(geom, detector_shape="flat")
    assert load_geometry("demo-fanbeam").fan_angle_deg == pytest.approx(flat.fan_angle_deg, rel=1e-9)
    assert flat.fov_radius_mm == pytest.approx(237.7, abs=0.1)


def test_load_by_path(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(geometry_to_toml(load_geometry("demo-fanbeam")))
    assert isinstance(load_geometry(path), FanBeamGeometry)


def test_unknown_name_lists_available():
    with pytest.raises(InputError, match="ldct-fanbeam"):
        load_geometry("no-such-scanner")


def _toml_without(field: str) -> str:
    text = geometry_to_toml(load_geometry("demo-fanbeam"))
    return "\n".join(line for line in text.splitlines() if not line.startswith(f"{field} ="))


def _toml_with(field: str, value: str) -> str:
    text = geometry_to_toml(load_geometry("demo-fanbeam"))
    return "\n".join(f"{field} = {value}" if line.startswith(f"{field} =") else line for line in text.splitlines())


@pytest.mark.parametrize("field,value,expected", [
    ("source_to_origin_mm", "-595.0", "positive"),
    ("n_detectors", "0", "positive"),
    ("n_views", "361", "even number of views"),
    ("n_detectors", "100000000000", "at most 65536"),  # was an 800 GB allocation
    ("n_views", "4611686018427387904", "at most 65536"),
    ("pixel_size_mm", '"3 mm"', "float"),
    ("detector_shape", "\"spherical\"", "'flat' or 'curved'"),
    ("detector_pitch_mm", "inf", "positive, finite"),
    ("source_to_detector_mm", "nan", "positive, finite"),
    ("start_angle_deg", "-inf", "finite"),
    ("source_to_detector_mm", "500.0", "more than source_to_origin_mm"),
    ("pixel_size_mm", "5.0", "field of view"),
])
def test_invalid_values_name_file_and_field(tmp_path, field, value, expected):
    path = tmp_path / "bad.toml"
    path.write_text(_toml_with(field, value))
    with pytest.raises(InputError, match=expected) as err:
        load_geometry(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("field", ["image_size", "detector_shape", "start_angle_deg", "source_to_origin_mm",
                                   "mu_water_per_mm", "beam"])
def test_missing_field_is_reported(tmp_path, field):
    """Every field is required: a missing one never silently takes a default."""
    path = tmp_path / "bad.toml"
    path.write_text(_toml_without(field))
    with pytest.raises(InputError, match=f"{field}.*missing") as err:
        load_geometry(path)
    assert str(path) in str(err.value)


def test_missing_protocol_table_is_reported(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(geometry_to_toml(load_geometry("demo-fanbeam")).split("[protocol]")[0])
    with pytest.raises(InputError, match="protocol.*missing"):
        load_geometry(path)


def test_unknown_field_and_bad_syntax(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text(geometry_to_toml(load_geometry("demo-fanbeam")).replace("n_views", "n_view"))
    with pytest.raises(InputError, match="n_view"):
        load_geometry(path)
    path.write_text("name = ")
    with pytest.raises(InputError, match="TOML"):
        load_geometry(path)


def test_geometry_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_geometry("demo-fanbeam").n_views = 10

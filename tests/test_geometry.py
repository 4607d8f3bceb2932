import dataclasses

import pytest

from tomoconsensus.errors import InputError
from tomoconsensus.geometry import (
    GEOMETRY_DIR,
    FanBeamGeometry,
    geometry_from_toml_text,
    geometry_to_toml,
    load_geometry,
)


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
    # the demo geometry keeps the fan angle of the real scanner model
    assert load_geometry("demo-fanbeam").fan_angle_deg == pytest.approx(geom.fan_angle_deg, rel=1e-9)
    assert geom.fov_radius_mm == pytest.approx(237.7, abs=0.1)


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
    ("pixel_size_mm", '"3 mm"', "float"),
    ("detector_shape", "\"curved\"", "flat"),
    ("source_to_detector_mm", "500.0", "more than source_to_origin_mm"),
    ("pixel_size_mm", "5.0", "field of view"),
])
def test_invalid_values_name_file_and_field(tmp_path, field, value, expected):
    path = tmp_path / "bad.toml"
    path.write_text(_toml_with(field, value))
    with pytest.raises(InputError, match=expected) as err:
        load_geometry(path)
    assert str(path) in str(err.value)


def test_missing_field_is_reported(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(_toml_without("image_size"))
    with pytest.raises(InputError, match="image_size.*missing"):
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

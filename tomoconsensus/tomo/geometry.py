"""Scan geometry (parallel beam, fan beam with a flat or curved detector), declared in TOML files under ``geometry/``.

A geometry file describes one acquisition: where the source and detector are, how many views
and detector channels there are, and the reconstruction grid. It is loaded into frozen dataclasses
and validated on load, so that a typo or a negative distance fails immediately with the file and
field named. A fan-beam file may carry one more table, ``[protocol]``, that belongs to the modality
reading it (CT's dose protocol, ``CTDoseProtocol`` in the CT plugin): the modality passes
its class as ``protocol=``; without it the table is skipped (the scan geometry alone).

Coordinate conventions (identical to ASTRA's ``fanflat`` / ``parallel`` geometries):

* image pixel ``[row i, col j]`` has its centre at ``x = (j - (N-1)/2) * pixel_size_mm``,
  ``y = ((N-1)/2 - i) * pixel_size_mm`` (row 0 is at the top, +y);
* at view angle ``theta`` the source sits at ``D * (sin theta, -cos theta)`` and the detector
  axis ``u`` points along ``(cos theta, sin theta)``; ``theta`` increases counter-clockwise;
* flat detector (``detector_shape = "flat"``): channel ``k`` is centred at
  ``u = (k - (n_detectors-1)/2) * detector_pitch_mm`` on a line at ``source_to_detector_mm``;
* curved detector (``detector_shape = "curved"``, equiangular, a cylinder arc centred on the
  source): channel ``k`` sees the ray at fan angle ``gamma_k = (k - (n_detectors-1)/2) * pitch / D_sd``
  (``detector_pitch_mm`` is then the arc length at the radius ``source_to_detector_mm``); the ray
  leaves the source along ``cos(gamma) e + sin(gamma) u_hat`` with ``e`` towards the isocentre and
  ``u_hat = (cos theta, sin theta)``, so positive ``gamma`` lies on the side of positive ``u``;
* sinograms are arrays ``[view, channel]`` of line integrals (dimensionless).

Loading from TOML is strict: every field (and, when a protocol class is given, the ``[protocol]`` table
with every one of its fields) must be present; the dataclass defaults below only serve code that builds
a geometry in Python.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

from tomoconsensus.config import dataclass_from_dict, read_toml
from tomoconsensus.errors import InputError


def _half_or_full_turn(v: float) -> bool:
    """180 or 360 (degrees)"""
    return v in (180.0, 360.0)


#: Largest number of views, channels or image pixels per side: beyond any scanner (a few thousand), and
#: 65536^2 float32 is 16 GiB; a larger count in a geometry file is a typo, refused before any allocation.
MAX_COUNT = 65536


def _even_positive(v: int) -> bool:
    """a positive, even number of views (so the odd/even halves are balanced), at most 65536"""
    return 0 < v <= MAX_COUNT and v % 2 == 0


def _count(v: int) -> bool:
    """a positive integer, at most 65536"""
    return 0 < v <= MAX_COUNT


def _full_turn(v: float) -> bool:
    """360 (full scan; short scans would need Parker weights, not implemented)"""
    return v == 360.0


def _detector_shape(v: str) -> bool:
    """'flat' or 'curved' (equiangular)"""
    return v in DETECTOR_SHAPES


def _positive_finite(v: float) -> bool:
    """a positive, finite number"""
    return math.isfinite(v) and v > 0


def _finite(v: float) -> bool:
    """a finite number"""
    return math.isfinite(v)


DETECTOR_SHAPES = ("flat", "curved")


def _shipped_geometry_folder() -> Traversable:
    """The folder of named geometries: the top-level ``geometry/`` of a source checkout (run from it, or
    installed editable: setuptools' editable finder does not map the data package), else its copy in an
    installed wheel, the data package ``tomoconsensus.geometries`` (see pyproject.toml)."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "geometry").is_dir():
        return checkout / "geometry"
    return resources.files("tomoconsensus.geometries")


#: Folder (a ``Path`` in a checkout, an ``importlib.resources`` Traversable when installed) with the
#: geometry files shipped with tomoconsensus; their one copy is the repository's top-level ``geometry/``.
GEOMETRY_DIR = _shipped_geometry_folder()


def shipped_geometries() -> list[str]:
    """Names of the shipped geometries (``ldct-fanbeam`` for ``geometry/ldct-fanbeam.toml``), sorted."""
    return sorted(p.name.removesuffix(".toml") for p in GEOMETRY_DIR.iterdir() if p.name.endswith(".toml"))


@dataclass(frozen=True)
class _ImageGrid:
    image_size: int = field(metadata={"check": _count})
    pixel_size_mm: float = field(metadata={"check": _positive_finite})

    @property
    def image_extent_mm(self) -> float:
        """Full width of the square reconstruction grid, mm."""
        return self.image_size * self.pixel_size_mm

    def pixel_centers_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(x, y)`` pixel-centre coordinates, each of shape ``(N, N)``, in mm."""
        c = (np.arange(self.image_size) - (self.image_size - 1) / 2) * self.pixel_size_mm
        return np.meshgrid(c, -c)  # x along columns, y decreasing down the rows


class _ViewSampling:
    """Properties shared by every scan with ``n_views`` uniformly spaced views."""

    n_views: int
    n_detectors: int
    angular_range_deg: float
    start_angle_deg: float

    @property
    def angles_rad(self) -> np.ndarray:
        """View angles, shape ``(n_views,)``, radians."""
        step = math.radians(self.angular_range_deg) / self.n_views
        return math.radians(self.start_angle_deg) + step * np.arange(self.n_views)

    @property
    def sinogram_shape(self) -> tuple[int, int]:
        return (self.n_views, self.n_detectors)


@dataclass(frozen=True)
class ParallelBeamGeometry(_ImageGrid, _ViewSampling):
    """Parallel-beam geometry (used to cross-check the FBP against ASTRA's own CPU FBP).

    Attributes
    ----------
    n_views : int
        Number of projection angles, uniformly spaced over ``angular_range_deg``.
    n_detectors : int
        Detector channels per view.
    detector_pitch_mm : float
        Channel spacing, mm.
    angular_range_deg : float
        180 (the minimal complete scan) or 360.
    """

    name: str = "parallel"
    description: str = ""
    n_views: int = field(default=180, metadata={"check": _count})
    n_detectors: int = field(default=256, metadata={"check": _count})
    detector_pitch_mm: float = field(default=1.0, metadata={"check": _positive_finite})
    angular_range_deg: float = field(default=180.0, metadata={"check": _half_or_full_turn})
    start_angle_deg: float = field(default=0.0, metadata={"check": _finite})
    beam: str = "parallel"


@dataclass(frozen=True)
class FanBeamGeometry(_ImageGrid, _ViewSampling):
    """Fan-beam geometry with a flat or curved (equiangular) detector, full 360 degree circular scan.

    Attributes
    ----------
    source_to_origin_mm : float
        Source to isocentre distance (rotation axis), mm.
    source_to_detector_mm : float
        Source to detector distance along the central ray, mm.
    n_detectors : int
        Detector channels per view.
    detector_pitch_mm : float
        Channel spacing *at the detector*, mm (flat: along the line; curved: arc length at the
        radius ``source_to_detector_mm``, i.e. an angular step ``pitch / D_sd``).
    n_views : int
        Views over ``angular_range_deg``; must be even so the odd/even split is balanced.
    angular_range_deg : float
        Must be 360 (short scans would need Parker weights, not implemented).
    detector_shape : str
        ``"flat"`` or ``"curved"`` (equiangular arc centred on the source; reconstructed and
        projected by :mod:`tomoconsensus.tomo.curved`).
    protocol : dataclass or None
        The modality's acquisition table ``[protocol]`` (CT: the dose model for simulating low-dose
        data, ``CTDoseProtocol``); None when read without one.
    """

    name: str = "fanbeam"
    description: str = ""
    source_to_origin_mm: float = field(default=595.0, metadata={"check": _positive_finite})
    source_to_detector_mm: float = field(default=1085.6, metadata={"check": _positive_finite})
    n_detectors: int = field(default=736, metadata={"check": _count})
    detector_pitch_mm: float = field(default=1.2858, metadata={"check": _positive_finite})
    n_views: int = field(default=2304, metadata={"check": _even_positive})
    angular_range_deg: float = field(default=360.0, metadata={"check": _full_turn})
    start_angle_deg: float = field(default=0.0, metadata={"check": _finite})
    detector_shape: str = field(default="flat", metadata={"check": _detector_shape})
    beam: str = "fan"
    protocol: Any = None

    @property
    def origin_to_detector_mm(self) -> float:
        return self.source_to_detector_mm - self.source_to_origin_mm

    @property
    def magnification(self) -> float:
        """Source-to-detector over source-to-isocentre distance."""
        return self.source_to_detector_mm / self.source_to_origin_mm

    @property
    def is_curved(self) -> bool:
        return self.detector_shape == "curved"

    @property
    def fan_angle_deg(self) -> float:
        """Full fan angle subtended by the detector, degrees."""
        half_width = self.n_detectors * self.detector_pitch_mm / 2
        if self.is_curved:
            return 2 * math.degrees(half_width / self.source_to_detector_mm)
        return 2 * math.degrees(math.atan(half_width / self.source_to_detector_mm))

    def channel_fan_angles_rad(self) -> np.ndarray:
        """Fan angle of each channel's ray (flat or curved detector), shape ``(n_detectors,)``, rad."""
        k = np.arange(self.n_detectors) - (self.n_detectors - 1) / 2
        if self.is_curved:
            return k * self.detector_pitch_mm / self.source_to_detector_mm
        return np.arctan(k * self.detector_pitch_mm / self.source_to_detector_mm)

    @property
    def fov_radius_mm(self) -> float:
        """Radius of the circle seen by every view (the scan field of view), mm."""
        return self.source_to_origin_mm * math.sin(math.radians(self.fan_angle_deg / 2))


Geometry = FanBeamGeometry | ParallelBeamGeometry

_CLASSES = {"fan": FanBeamGeometry, "parallel": ParallelBeamGeometry}


def geometry_from_dict(values: dict[str, Any], source: str | Path = "<dict>", protocol: type | None = None) -> Geometry:
    """Build and validate a geometry from a TOML-like dict.

    Parameters
    ----------
    protocol : dataclass type, optional
        The modality's ``[protocol]`` table (CT: ``CTDoseProtocol``): then
        required, with every field, in a fan-beam file. None: a ``[protocol]`` table is skipped.

    Raises
    ------
    InputError
        For an unknown, missing, mistyped or out-of-range field, or an image grid larger than the
        scan field of view.
    """
    values = dict(values)
    if "beam" not in values:
        raise InputError(source, "beam", "a value (required field): 'fan' or 'parallel'", "missing")
    beam = values["beam"]
    if beam not in _CLASSES:
        raise InputError(source, "beam", "'fan' or 'parallel'", beam)
    cls = _CLASSES[beam]
    table = values.pop("protocol", None)
    if table is not None and cls is not FanBeamGeometry:
        raise InputError(source, "protocol", "no [protocol] table for a parallel geometry")
    if protocol is not None and cls is FanBeamGeometry:
        values["protocol"] = table if table is not None else _MISSING
    _require_every_field(cls, values, source, optional=() if protocol is not None else ("protocol",))
    if "protocol" in values:
        if not isinstance(table, dict):
            raise InputError(source, "protocol", "a [protocol] table", table)
        _require_every_field(protocol, table, f"{source} [protocol]")
        values["protocol"] = dataclass_from_dict(protocol, table, f"{source} [protocol]")
    geom = dataclass_from_dict(cls, values, source)
    if isinstance(geom, FanBeamGeometry):
        if geom.source_to_detector_mm <= geom.source_to_origin_mm:
            raise InputError(source, "source_to_detector_mm",
                             f"more than source_to_origin_mm = {geom.source_to_origin_mm}",
                             geom.source_to_detector_mm)
        if geom.image_extent_mm / 2 > geom.fov_radius_mm * (1 + 1e-6):
            raise InputError(source, "image_size * pixel_size_mm",
                             f"an image grid inside the scan field of view (half-width <= "
                             f"{geom.fov_radius_mm:.1f} mm)", geom.image_extent_mm)
    return geom


#: Stands for a required ``[protocol]`` table that a file lacks (reported as missing).
_MISSING = object()


def _require_every_field(cls: type, values: dict[str, Any], source: str | Path, optional: tuple[str, ...] = ()) -> None:
    """A geometry file states every field: a missing one is an error, never a silent default."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(source, unknown[0], f"one of {sorted(known)}", "unknown field")
    for name in known:
        if (name not in values or values[name] is _MISSING) and name not in optional:
            raise InputError(source, name, "a value (every geometry field is required, see docs/geometry.md)",
                             "missing")


def load_geometry(name_or_path: str | Path, protocol: type | None = None) -> Geometry:
    """Load a geometry by name (a file in ``geometry/``) or from a TOML path.

    Parameters
    ----------
    name_or_path : str or Path
        ``"ldct-fanbeam"`` loads ``geometry/ldct-fanbeam.toml``; anything ending in ``.toml`` or
        naming an existing file is read as a path.
    protocol : dataclass type, optional
        The modality's ``[protocol]`` table (see :func:`geometry_from_dict`).
    """
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return geometry_from_dict(read_toml(path, "geometry"), path, protocol)
    if str(name_or_path) not in shipped_geometries():
        raise InputError("--geometry", "name", f"one of {shipped_geometries()} or a .toml path", str(name_or_path))
    with resources.as_file(GEOMETRY_DIR.joinpath(f"{name_or_path}.toml")) as path:
        return geometry_from_dict(read_toml(path, "geometry"), path, protocol)


def load_fan_beam(name_or_path: str | Path, protocol: type | None = None) -> FanBeamGeometry:
    """:func:`load_geometry`, refused (InputError naming the file's ``beam``) unless it is a fan beam."""
    geom = load_geometry(name_or_path, protocol)
    if not isinstance(geom, FanBeamGeometry):
        raise InputError(name_or_path, "beam", "a fan-beam geometry", geom.beam)
    return geom


def geometry_to_toml(geom: Geometry) -> str:
    """Serialise a geometry back to TOML text (stored in prepared files so they are self-describing)."""
    lines = []
    tables = []
    for f in dataclasses.fields(geom):
        value = getattr(geom, f.name)
        if value is None and f.name == "protocol":
            continue
        if dataclasses.is_dataclass(value):
            tables.append((f.name, value))
        else:
            lines.append(f"{f.name} = {_toml_value(value)}")
    for table_name, table in tables:
        lines.append(f"\n[{table_name}]")
        lines += [f"{g.name} = {_toml_value(getattr(table, g.name))}" for g in dataclasses.fields(table)]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def geometry_from_toml_text(text: str, source: str = "<embedded geometry>", protocol: type | None = None) -> Geometry:
    """Inverse of :func:`geometry_to_toml` (with the ``protocol`` class that wrote the ``[protocol]`` table)."""
    return geometry_from_dict(tomllib.loads(text), source, protocol)

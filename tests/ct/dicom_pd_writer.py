"""Test utility: synthetic DICOM-CT-PD helical scans of an analytic phantom, exact line integrals.

Every projection value is the exact integral of the phantom's attenuation along the straight
segment from the focal spot to the centre of a detector element of the cylindrical detector, in
the conventions of :mod:`tomoconsensus.ct.dicom_pd` (focal centre at ``rho (cos(-phi), sin(-phi))``
in patient x/y, i.e. ``rho (cos phi, sin phi)`` in tomoconsensus' image frame, channel ``j`` at
fan angle ``((j+1) - c_col) du / d0`` turning with ``phi``, row ``k`` at ``(c_row - (k+1)) dv``).
The phantom is written in tomoconsensus' image frame (x right, y up the image, z table position).

Files are implicit-VR little endian (private values then carry no VR) by default, or explicit-VR
little endian, or explicit-VR RLE lossless (``ScanSpec.syntax``), in the TCIA pixel layout (Rows =
channels, Columns = detector rows), with an optional flying focal spot. Private tags are written
with the VR of the DICOM-CT-PD dictionary (FreeCT / Moen et al. 2021: WaterAttenuationCoefficient
DS, geometry FL, counts US) or with another one per tag (``ScanSpec.vrs``, e.g. FL for (7041,1001)
or DS for the geometry), as scanners and converters differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, generate_uid

from tomoconsensus.ct.dicom_pd_tags import PREPROCESSING_FLAGS, PRIVATE_TAGS

#: Private tags as the file may carry them: the dictionary's VR, or text for the numbers.
TEXT_GEOMETRY = {name: "DS" for name in ("DetectorElementTransverseSpacing", "DetectorFocalCenterAngularPosition",
                                        "DetectorFocalCenterAxialPosition", "ConstantRadialDistance",
                                        "DetectorCentralElement", "SourceAxialPositionShift")}
TEXT_GEOMETRY.update(NumberofDetectorRows="IS", NumberofSourceAngularSteps="IS")


@dataclass(frozen=True)
class Cylinder:
    """Elliptic cylinder along z: centre (x, y) mm, semi-axes (a, b) mm, in-plane rotation, z range."""

    centre: tuple[float, float]
    axes: tuple[float, float]
    mu: float
    angle_rad: float = 0.0
    z_range: tuple[float, float] = (-math.inf, math.inf)


@dataclass(frozen=True)
class Ellipsoid:
    """Ellipsoid: centre (x, y, z) mm, semi-axes (a, b, c) mm, rotated about z by ``angle_rad``."""

    centre: tuple[float, float, float]
    axes: tuple[float, float, float]
    mu: float
    angle_rad: float = 0.0


def _chord(source, direction, centre, axes, angle):
    """Parameter interval [t0, t1] where ``source + t direction`` is inside the ellipse/ellipsoid."""
    c, s = math.cos(angle), math.sin(angle)
    p = [source[..., i] - centre[i] for i in range(len(axes))]
    d = [direction[..., i] for i in range(len(axes))]
    p[0], p[1] = c * p[0] + s * p[1], -s * p[0] + c * p[1]
    d[0], d[1] = c * d[0] + s * d[1], -s * d[0] + c * d[1]
    a = sum((d[i] / axes[i]) ** 2 for i in range(len(axes)))
    b = 2 * sum(p[i] * d[i] / axes[i] ** 2 for i in range(len(axes)))
    cc = sum((p[i] / axes[i]) ** 2 for i in range(len(axes))) - 1
    disc = b**2 - 4 * a * cc
    root = np.sqrt(np.maximum(disc, 0))
    t0, t1 = (-b - root) / (2 * a), (-b + root) / (2 * a)
    return np.where(disc > 0, t0, 0.0), np.where(disc > 0, t1, 0.0)


def line_integrals(phantom, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Exact integrals along segments ``source -> target`` (arrays (..., 3), mm), dimensionless."""
    direction = target - source
    length = np.linalg.norm(direction, axis=-1)
    total = np.zeros(length.shape)
    for obj in phantom:
        if isinstance(obj, Ellipsoid):
            t0, t1 = _chord(source, direction, obj.centre, obj.axes, obj.angle_rad)
        else:
            t0, t1 = _chord(source[..., :2], direction[..., :2], obj.centre, obj.axes, obj.angle_rad)
            z0, dz = source[..., 2], direction[..., 2]
            with np.errstate(divide="ignore", invalid="ignore"):
                za, zb = (obj.z_range[0] - z0) / dz, (obj.z_range[1] - z0) / dz
            flat = np.abs(dz) < 1e-12
            inside = (z0 >= obj.z_range[0]) & (z0 <= obj.z_range[1])
            lo = np.where(flat, np.where(inside, -np.inf, np.inf), np.minimum(za, zb))
            hi = np.where(flat, np.where(inside, np.inf, -np.inf), np.maximum(za, zb))
            t0, t1 = np.maximum(t0, lo), np.minimum(t1, hi)
        t0, t1 = np.clip(t0, 0, 1), np.clip(t1, 0, 1)
        total += obj.mu * np.maximum(t1 - t0, 0) * length
    return total


@dataclass
class ScanSpec:
    """Acquisition of a synthetic scan (defaults: a small LDCT-like scanner)."""

    n_channels: int = 96
    n_rows: int = 8
    views_per_turn: int = 192
    n_turns: float = 3.0
    rho_mm: float = 595.0
    d0_mm: float = 1085.6
    fan_angle_rad: float = 0.87
    row_spacing_mm: float = 2.0  # at the detector: 8 x 2 mm -> 8.8 mm collimation at the isocentre
    feed_mm_per_turn: float = 7.0
    z_start_mm: float = 100.0
    phi_start_rad: float = 0.3
    rotation_sign: int = 1  # -1: the angle decreases from view to view
    central_channel: float | None = None  # 1-based; default: the middle
    central_row: float | None = None
    ffs: str = "FFSNONE"
    ffs_dphi_rad: float = 0.004
    ffs_drho_mm: float = 4.0
    ffs_dz_mm: float = 1.0
    scan_type: str = "HELICAL"
    incident_photons: float | None = None  # Poisson noise at this I0 per channel and view
    water_per_mm: float = 0.0193
    water_tag_per_cm: bool = False  # write WaterAttenuationCoefficient in 1/cm
    syntax: str = "implicit"  # "implicit", "explicit" or "rle" (explicit VR, RLE lossless pixels)
    vrs: dict = field(default_factory=dict)  # name -> VR to write instead of the dictionary's
    extra: dict = field(default_factory=dict)  # name -> value added or replaced (e.g. LogFlag "NO")
    preprocessing_flags: bool = True  # write the (7039,1003-1009) flags, all "YES"
    tcia_layout: bool = True
    swap_shift_tags: bool = False
    seed: int = 0
    series_uid: str = field(default_factory=generate_uid)

    @property
    def channel_spacing_mm(self) -> float:
        return self.fan_angle_rad * self.d0_mm / self.n_channels

    @property
    def n_views(self) -> int:
        return round(self.n_turns * self.views_per_turn)

    def c_col(self) -> float:
        return (self.n_channels + 1) / 2 if self.central_channel is None else self.central_channel

    def c_row(self) -> float:
        return (self.n_rows + 1) / 2 if self.central_row is None else self.central_row

    def shifts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(d_phi, d_z, d_rho) per view: the second focal position of each FFS pair is shifted."""
        m = np.arange(self.n_views)
        xy = self.ffs in ("FFSXY", "FFSXYZ")
        z = self.ffs in ("FFSZ", "FFSXYZ")
        phase_xy = (m % 2) if xy else np.zeros_like(m)
        phase_z = ((m // 2 if self.ffs == "FFSXYZ" else m) % 2) if z else np.zeros_like(m)
        return phase_xy * self.ffs_dphi_rad, phase_z * self.ffs_dz_mm, phase_xy * self.ffs_drho_mm

    def views(self) -> tuple[np.ndarray, np.ndarray]:
        """(phi, z) of the focal centre per view."""
        m = np.arange(self.n_views)
        phi = self.phi_start_rad + self.rotation_sign * 2 * math.pi * m / self.views_per_turn
        feed = 0.0 if self.scan_type == "AXIAL" else self.feed_mm_per_turn
        return phi, self.z_start_mm + feed * m / self.views_per_turn


def simulate(spec: ScanSpec, phantom) -> np.ndarray:
    """Line integrals (V, rows, channels) in file conventions (exact, plus Poisson noise if asked)."""
    phi, z = spec.views()
    dphi, dz, drho = spec.shifts()
    gamma_file = ((np.arange(spec.n_channels) + 1) - spec.c_col()) * spec.channel_spacing_mm / spec.d0_mm
    v = (spec.c_row() - (np.arange(spec.n_rows) + 1)) * spec.row_spacing_mm
    # image frame: focal centre rho (cos phi, sin phi); a file fan angle turns with phi (counter-clockwise)
    r_src = (spec.rho_mm + drho)[:, None, None]
    a_src = (phi + dphi)[:, None, None]
    source = np.stack(np.broadcast_arrays(r_src * np.cos(a_src), r_src * np.sin(a_src),
                                          (z + dz)[:, None, None]), axis=-1)
    beta = phi[:, None, None] + math.pi + gamma_file[None, None, :]  # direction from the focal centre
    fx, fy = spec.rho_mm * np.cos(phi)[:, None, None], spec.rho_mm * np.sin(phi)[:, None, None]
    target = np.stack(np.broadcast_arrays(fx + spec.d0_mm * np.cos(beta), fy + spec.d0_mm * np.sin(beta),
                                          z[:, None, None] + v[None, :, None]), axis=-1)
    p = np.concatenate([line_integrals(phantom, source[i:i + 64], target[i:i + 64])
                        for i in range(0, spec.n_views, 64)])
    if spec.incident_photons is not None:
        rng = np.random.default_rng(spec.seed)
        counts = np.maximum(rng.poisson(spec.incident_photons * np.exp(-p)), 1)
        p = -np.log(counts / spec.incident_photons)
    return p


def _put(ds: pydicom.Dataset, name: str, value, spec: ScanSpec) -> None:
    group, element, vr, _ = PRIVATE_TAGS[name]
    vr = spec.vrs.get(name, vr)
    if spec.swap_shift_tags and name in ("SourceAngularPositionShift", "SourceAxialPositionShift"):
        element = 0x100C if element == 0x100B else 0x100B
    values = [value] if np.ndim(value) == 0 or isinstance(value, str) else list(value)
    if vr in ("DS", "IS"):  # decimal strings (at most 16 characters each)
        values = [f"{float(v):.9g}" if vr == "DS" else str(int(v)) for v in values]
    elif vr == "FL":
        values = [float(v) for v in values]
    ds.add_new((group << 16) | element, vr, values[0] if len(values) == 1 else values)


def _private_values(spec: ScanSpec, m: int, phi, z, shifts) -> dict:
    dphi, dz, drho = shifts
    values = {
        "DetectorElementTransverseSpacing": spec.channel_spacing_mm,
        "DetectorElementAxialSpacing": spec.row_spacing_mm, "DetectorShape": "CYLINDRICAL",
        "NumberofDetectorRows": spec.n_rows, "NumberofDetectorColumns": spec.n_channels,
        "DetectorFocalCenterAngularPosition": float(np.mod(phi[m], 2 * math.pi)),
        "DetectorFocalCenterAxialPosition": float(z[m]), "DetectorFocalCenterRadialDistance": spec.rho_mm,
        "ConstantRadialDistance": spec.d0_mm, "DetectorCentralElement": [spec.c_col(), spec.c_row()],
        "SourceAngularPositionShift": float(dphi[m]), "SourceAxialPositionShift": float(dz[m]),
        "SourceRadialDistanceShift": float(drho[m]), "FlyingFocalSpotMode": spec.ffs,
        "NumberofSourceAngularSteps": spec.views_per_turn, "TypeofProjectionData": spec.scan_type,
        "TypeofProjectionGeometry": "FANBEAM",
        "WaterAttenuationCoefficient": spec.water_per_mm * (10 if spec.water_tag_per_cm else 1),
    }
    if spec.preprocessing_flags:
        values.update({flag: "YES" for flag in PREPROCESSING_FLAGS})
    if spec.incident_photons is not None:
        values["PhotonStatistics"] = np.full(spec.n_channels, spec.incident_photons)
    values.update(spec.extra)
    return values


def write_scan(folder: str | Path, spec: ScanSpec, phantom, line_integrals_override: np.ndarray | None = None,
               shuffle_names: bool = True) -> Path:
    """Write one file per view into ``folder`` (created); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    p = simulate(spec, phantom) if line_integrals_override is None else line_integrals_override
    slope = max(float(p.max()), 1.0) / 60000.0
    intercept = min(float(p.min()), 0.0)
    stored = np.round((p - intercept) / slope).astype(np.uint16)
    phi, z = spec.views()
    shifts = spec.shifts()
    names = np.random.default_rng(spec.seed + 1).permutation(spec.n_views) if shuffle_names else np.arange(spec.n_views)
    study = generate_uid()
    for m in range(spec.n_views):
        ds = _dataset(spec, study, m)
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", f"{intercept:.10g}"
        image = stored[m].T if spec.tcia_layout else stored[m]  # TCIA: Rows = channels
        ds.Rows, ds.Columns = image.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.ascontiguousarray(image).tobytes()
        for name, value in _private_values(spec, m, phi, z, shifts).items():
            if value is not None:
                _put(ds, name, value, spec)
        if spec.syntax == "rle":
            ds.compress(RLELossless)
        pydicom.dcmwrite(folder / f"proj_{names[m]:05d}.dcm", ds, enforce_file_format=True)
    return folder


def _dataset(spec: ScanSpec, study: str, m: int) -> pydicom.Dataset:
    """The standard attributes of view ``m`` (no pixels, no private tags)."""
    if spec.syntax not in ("implicit", "explicit", "rle"):
        raise ValueError(spec.syntax)
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if spec.syntax == "implicit" else ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, spec.series_uid
    ds.InstanceNumber = m + 1
    return ds


def water_phantom(z_sphere_mm: float | None = None) -> list:
    """Water cylinder (r = 100 mm) with a bone-like (+1000 HU) and a fat-like (-100 HU) insert,
    and optionally an iodine-like sphere (+500 HU, r = 12 mm) at table position ``z_sphere_mm``."""
    mu = 0.0193
    objects = [Cylinder((0.0, 0.0), (100.0, 100.0), mu),
               Cylinder((45.0, 20.0), (20.0, 20.0), mu * 1.0),  # +1000 HU on top of water
               Cylinder((-40.0, -35.0), (22.0, 16.0), -0.1 * mu, angle_rad=0.5)]
    if z_sphere_mm is not None:
        objects.append(Ellipsoid((-30.0, 45.0, z_sphere_mm), (12.0, 12.0, 12.0), 0.5 * mu))
    return objects

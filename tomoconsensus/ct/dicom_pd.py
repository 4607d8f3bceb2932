"""DICOM-CT-PD raw projection data (TCIA "LDCT-and-Projection-data"): one file per projection.

Format: Chen B. et al., Med. Phys. 42(12) 6964 (2015); tag table: Moen T.R. et al., Med. Phys.
48(2) 902 (2021), Table IV. Pixel values are post-log line integrals stored as integers with
``RescaleSlope`` / ``RescaleIntercept``; the geometry is in private tags (:data:`PRIVATE_TAGS`),
read from explicit- or implicit-VR files (implicit-VR private values arrive as raw bytes and are
decoded here by the VR of the table).

Conventions (the only place they are defined; docs/geometry.md repeats them)
----------------------------------------------------------------------------
Following readers that were used on the TCIA data (no real file could be checked here):

* focal centre of view ``m`` at ``rho (cos(-phi_m), sin(-phi_m))`` in the patient x/y plane, at
  table position ``z_m`` = DetectorFocalCenterAxialPosition; the source (focal spot) at radius
  ``rho + d_rho``, angle ``phi + d_phi``, height ``z + d_z`` (the SourceXxxShift tags, flying focal spot);
* channel ``j`` (0-based) at fan angle ``((j+1) - c_col) * du / d0``, turning with ``phi``;
* row ``k`` (0-based) at axial offset ``(c_row - (k+1)) * dv`` at the detector (mm, along +z);
* the detector is a cylinder of radius ``d0`` (ConstantRadialDistance) about the focal centre.

Images are shown as axial DICOM images: column -> patient x, row -> patient y (y grows down the
rows). In tomoconsensus' image frame (``y_img = -y_patient``, see :mod:`tomoconsensus.geometry`)
the focal centre is at ``rho (cos phi, sin phi)``, i.e. at FBP view angle ``theta = phi + pi/2``,
and tomoconsensus' fan angle is the negative of the file's: :func:`image_view_angle`,
:func:`channel_of_fan_angle`, :func:`row_of_height` convert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from tqdm.auto import tqdm

from tomoconsensus.errors import InputError

#: name -> (group, element, VR, values per file). Moen et al. 2021, Table IV.
PRIVATE_TAGS: dict[str, tuple[int, int, str, str]] = {
    "DetectorElementTransverseSpacing": (0x7029, 0x1002, "FL", "1"),
    "DetectorElementAxialSpacing": (0x7029, 0x1006, "FL", "1"),
    "DetectorShape": (0x7029, 0x100B, "CS", "1"),
    "NumberofDetectorRows": (0x7029, 0x1010, "US", "1"),
    "NumberofDetectorColumns": (0x7029, 0x1011, "US", "1"),
    "DetectorFocalCenterAngularPosition": (0x7031, 0x1001, "FL", "1"),
    "DetectorFocalCenterAxialPosition": (0x7031, 0x1002, "FL", "1"),
    "DetectorFocalCenterRadialDistance": (0x7031, 0x1003, "FL", "1"),
    "ConstantRadialDistance": (0x7031, 0x1031, "FL", "1"),
    "DetectorCentralElement": (0x7031, 0x1033, "FL", "2"),
    "SourceAngularPositionShift": (0x7033, 0x100B, "FL", "1"),
    "SourceAxialPositionShift": (0x7033, 0x100C, "FL", "1"),
    "SourceRadialDistanceShift": (0x7033, 0x100D, "FL", "1"),
    "FlyingFocalSpotMode": (0x7033, 0x100E, "CS", "1"),
    "NumberofSourceAngularSteps": (0x7033, 0x1013, "US", "1"),
    "PhotonStatistics": (0x7033, 0x1065, "FL", "1-n"),
    "TypeofProjectionData": (0x7037, 0x1009, "CS", "1"),
    "WaterAttenuationCoefficient": (0x7041, 0x1001, "FL", "1"),
}
#: Tags without which a scan cannot be rebinned.
REQUIRED = ("DetectorElementTransverseSpacing", "DetectorElementAxialSpacing", "NumberofDetectorRows",
            "NumberofDetectorColumns", "DetectorFocalCenterAngularPosition", "DetectorFocalCenterAxialPosition",
            "DetectorFocalCenterRadialDistance", "ConstantRadialDistance", "DetectorCentralElement",
            "NumberofSourceAngularSteps", "WaterAttenuationCoefficient")
#: Tags that must be the same in every file of a scan.
CONSTANT = ("DetectorElementTransverseSpacing", "DetectorElementAxialSpacing", "DetectorShape",
            "NumberofDetectorRows", "NumberofDetectorColumns", "DetectorFocalCenterRadialDistance",
            "ConstantRadialDistance", "DetectorCentralElement", "FlyingFocalSpotMode",
            "NumberofSourceAngularSteps", "TypeofProjectionData", "WaterAttenuationCoefficient")
FFS_PERIOD = {"FFSNONE": 1, "FFSZ": 2, "FFSXY": 2, "FFSXYZ": 4}
_DTYPES = {"FL": "<f4", "FD": "<f8", "US": "<u2", "UL": "<u4", "SS": "<i2", "SL": "<i4"}


def image_view_angle(phi_rad):
    """FBP view angle ``theta`` (tomoconsensus convention) of a source at file angle ``phi``."""
    return np.asarray(phi_rad) + math.pi / 2


def channel_of_fan_angle(gamma_rad, central_channel: float, dgamma: float):
    """0-based (fractional) file channel ``j`` hit by the ray at tomoconsensus fan angle ``gamma``."""
    return central_channel - 1 - np.asarray(gamma_rad) / dgamma


def row_of_height(v_mm, central_row: float, row_spacing_mm: float):
    """0-based (fractional) file row ``k`` at axial offset ``v`` (mm at the detector, +z)."""
    return central_row - 1 - np.asarray(v_mm) / row_spacing_mm


def decode_private(ds: pydicom.Dataset, name: str, path: Path):
    """Value of a private tag as float / int / str / ndarray, or None when absent."""
    group, element, vr, vm = PRIVATE_TAGS[name]
    tag = (group << 16) | element
    if tag not in ds:
        return None
    elem = ds[tag]
    value = elem.value
    if isinstance(value, (bytes, bytearray)):  # implicit VR (or UN): decode by the table's VR
        if vr in _DTYPES:
            size = np.dtype(_DTYPES[vr]).itemsize
            if len(value) % size:
                raise InputError(path, name, f"{vr} values ({size} bytes each)", f"{len(value)} bytes")
            value = np.frombuffer(value, _DTYPES[vr]).astype(np.float64)
        else:
            value = value.decode("ascii", "replace").strip("\x00 ")
    if vr in _DTYPES:
        arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
        if vm == "1":
            if arr.size != 1:
                raise InputError(path, name, "one value", arr.size)
            return float(arr[0])
        if vm == "2" and arr.size != 2:
            raise InputError(path, name, "two values", arr.size)
        return arr
    return str(value).strip()


@dataclass
class HelicalScan:
    """A DICOM-CT-PD scan, views in acquisition order.

    Attributes
    ----------
    raw : ndarray, shape (V, rows, channels)
        Stored pixel values, ``[view, detector row k, channel j]`` (file conventions above).
    slope, intercept : ndarray, shape (V,)
        Rescale to line integrals: ``p = raw * slope + intercept``.
    phi_rad : ndarray (V,)
        Unwrapped DetectorFocalCenterAngularPosition.
    z_mm : ndarray (V,)
        DetectorFocalCenterAxialPosition (table position).
    shift_phi_rad, shift_z_mm, shift_rho_mm : ndarray (V,)
        Flying focal spot shifts of the source from the focal centre.
    photons : ndarray (V, channels) or None
        PhotonStatistics, incident photons per channel.
    """

    raw: np.ndarray
    slope: np.ndarray
    intercept: np.ndarray
    phi_rad: np.ndarray
    z_mm: np.ndarray
    rho_mm: float
    d0_mm: float
    channel_spacing_mm: float
    row_spacing_mm: float
    central_channel: float
    central_row: float
    shift_phi_rad: np.ndarray
    shift_z_mm: np.ndarray
    shift_rho_mm: np.ndarray
    ffs_mode: str
    views_per_rotation: int
    photons: np.ndarray | None
    mu_water_per_mm: float
    scan_type: str
    detector_shape: str
    source: str
    patient_id: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def n_views(self) -> int:
        return self.raw.shape[0]

    @property
    def n_rows(self) -> int:
        return self.raw.shape[1]

    @property
    def n_channels(self) -> int:
        return self.raw.shape[2]

    @property
    def dgamma(self) -> float:
        """Angular channel spacing ``du / d0``, rad."""
        return self.channel_spacing_mm / self.d0_mm

    def line_integrals(self, views, rows, channels) -> np.ndarray:
        """``p`` at matching index arrays (broadcast), float32."""
        views = np.asarray(views)
        return (self.raw[views, rows, channels] * self.slope[views] + self.intercept[views]).astype(np.float32)


def _read_one(path: Path) -> tuple[pydicom.Dataset, dict]:
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise InputError(path, "file", "a readable DICOM-CT-PD file", str(exc)) from None
    values = {name: decode_private(ds, name, path) for name in PRIVATE_TAGS}
    no_geometry = values["NumberofDetectorRows"] is None and values["DetectorFocalCenterAngularPosition"] is None
    if no_geometry and ("ImagePositionPatient" in ds or "PixelSpacing" in ds):
        raise InputError(path, "DetectorFocalCenterAngularPosition (7031,1001)",
                         "raw projections (DICOM-CT-PD); this looks like a folder of CT images: use --images",
                         "missing")
    for name in REQUIRED:
        if values[name] is None:
            group, element = PRIVATE_TAGS[name][:2]
            raise InputError(path, f"{name} ({group:04X},{element:04X})", "this geometry tag", "missing")
    return ds, values


def _pixels(ds: pydicom.Dataset, values: dict, path: Path) -> np.ndarray:
    """Stored values as (rows, channels), whatever the Rows/Columns layout."""
    n_rows, n_cols = int(values["NumberofDetectorRows"]), int(values["NumberofDetectorColumns"])
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if {rows, cols} != {n_rows, n_cols}:
        raise InputError(path, "Rows/Columns", f"{n_cols} x {n_rows} or {n_rows} x {n_cols} "
                         "(NumberofDetectorColumns/Rows)", f"{rows} x {cols}")
    if "PixelData" not in ds:
        raise InputError(path, "PixelData", "projection pixel data", "missing")
    bits = int(ds.get("BitsAllocated", 16))
    if bits not in (8, 16, 32):
        raise InputError(path, "BitsAllocated", "8, 16 or 32", bits)
    dtype = np.dtype(f"<{'i' if int(ds.get('PixelRepresentation', 0)) else 'u'}{bits // 8}")
    data = ds.PixelData
    if len(data) < rows * cols * dtype.itemsize:
        raise InputError(path, "PixelData", f"{rows * cols * dtype.itemsize} bytes ({rows} x {cols} x {bits} bit)",
                         f"{len(data)} bytes (truncated file)")
    pixels = np.frombuffer(data, dtype, count=rows * cols).reshape(rows, cols)
    # TCIA layout: Rows = channels, Columns = detector rows; a square detector is read that way too
    return pixels.T if rows == n_cols else pixels


def _water_per_mm(value: float, path) -> float:
    """WaterAttenuationCoefficient: ~0.02 is 1/mm, ~0.2 is 1/cm (sources differ); decided by magnitude."""
    if 0.005 < value < 0.1:
        return value
    if 0.05 <= value < 1.0:
        return value / 10
    raise InputError(path, "WaterAttenuationCoefficient (7041,1001)", "about 0.02 /mm or 0.2 /cm", value)


def list_projection_files(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "--projections", "a folder of DICOM-CT-PD projection files", "not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(folder, "--projections", "a folder of DICOM-CT-PD projection files", "empty")
    return files


def read_projections(folder: str | Path, progress: bool = True) -> HelicalScan:
    """Read, check and order every projection file of one scan (any file names).

    Raises
    ------
    InputError
        Unreadable or truncated file, missing geometry tag, files of two scans, geometry that
        differs between files, CT images instead of projections, an axial scan shorter than a turn.
    """
    files = list_projection_files(folder)
    first_ds, first = _read_one(files[0])
    series = str(first_ds.get("SeriesInstanceUID", ""))
    n_views = len(files)
    n_rows, n_cols = int(first["NumberofDetectorRows"]), int(first["NumberofDetectorColumns"])
    raw = None
    per_view = {k: np.zeros(n_views) for k in ("instance", "slope", "intercept", "phi", "z", "dphi", "dz", "drho")}
    photons = None
    for i, path in enumerate(tqdm(files, desc="read projections", unit="file", disable=not progress)):
        ds, values = (first_ds, first) if i == 0 else _read_one(path)
        if str(ds.get("SeriesInstanceUID", "")) != series:
            raise InputError(path, "SeriesInstanceUID", f"one scan per folder ({series} as in {files[0].name})",
                             str(ds.get("SeriesInstanceUID", "")))
        for name in CONSTANT:
            if not _same(values[name], first[name]):
                raise InputError(path, name, f"the same value in every file ({first[name]} in {files[0].name})",
                                 values[name])
        pixels = _pixels(ds, values, path)
        if raw is None:
            raw = np.empty((n_views, n_rows, n_cols), dtype=pixels.dtype)
        raw[i] = pixels
        pv = per_view
        pv["instance"][i] = float(ds.get("InstanceNumber", i))
        pv["slope"][i] = float(ds.get("RescaleSlope", 1.0))
        pv["intercept"][i] = float(ds.get("RescaleIntercept", 0.0))
        pv["phi"][i] = values["DetectorFocalCenterAngularPosition"]
        pv["z"][i] = values["DetectorFocalCenterAxialPosition"]
        pv["dphi"][i] = values["SourceAngularPositionShift"] or 0.0
        pv["dz"][i] = values["SourceAxialPositionShift"] or 0.0
        pv["drho"][i] = values["SourceRadialDistanceShift"] or 0.0
        if values["PhotonStatistics"] is not None:
            if photons is None:
                photons = np.full((n_views, n_cols), np.nan)
            stats = np.asarray(values["PhotonStatistics"])
            if stats.size != n_cols:
                raise InputError(path, "PhotonStatistics (7033,1065)", f"{n_cols} values (one per channel)", stats.size)
            photons[i] = stats
    scan = _assemble(Path(folder), files, first, raw, per_view, photons)
    scan.patient_id = str(first_ds.get("PatientID", "")) or Path(folder).name
    return scan


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-5, atol=1e-6))


def _assemble(folder: Path, files, first: dict, raw, pv: dict, photons) -> HelicalScan:
    order = np.argsort(pv["instance"], kind="stable")
    pv = {k: v[order] for k, v in pv.items()}
    raw = raw[order]
    photons = None if photons is None else photons[order]
    if photons is not None and np.isnan(photons).any():
        raise InputError(folder, "PhotonStatistics (7033,1065)", "the tag in every file or in none", "partly missing")
    notes: list[str] = []
    dphi, dz = pv["dphi"], pv["dz"]
    # Some dictionaries swap (7033,100B) and (7033,100C): an angular shift is ~1e-3 rad, an axial one ~1 mm.
    if np.abs(dphi).max() > 0.02 and np.abs(dz).max() <= 0.02:
        dphi, dz = dz, dphi
        notes.append("(7033,100B) held millimetres and (7033,100C) radians: read as swapped "
                     "(axial and angular source shifts)")
    elif np.abs(dphi).max() > 0.02:
        raise InputError(folder, "SourceAngularPositionShift (7033,100B)", "a focal-spot shift of < 0.02 rad",
                         float(np.abs(dphi).max()))
    phi = np.unwrap(pv["phi"])
    n_per_turn = int(first["NumberofSourceAngularSteps"])
    steps = np.diff(phi)
    step = 2 * math.pi / n_per_turn
    if len(steps) and not np.allclose(np.abs(steps), step, rtol=0.05):
        bad = int(np.argmax(np.abs(np.abs(steps) - step))) + 1
        raise InputError(files[order[bad]], "DetectorFocalCenterAngularPosition (7031,1001)",
                         f"steps of 2 pi / NumberofSourceAngularSteps = {step:.6f} rad between consecutive "
                         "InstanceNumbers (missing or duplicated views?)", float(steps[bad - 1]))
    if len(steps) and not (np.all(steps > 0) or np.all(steps < 0)):
        raise InputError(folder, "DetectorFocalCenterAngularPosition (7031,1001)",
                         "a monotonic angle in InstanceNumber order", "direction changes")
    scan_type = str(first["TypeofProjectionData"] or "HELICAL").upper()
    if len(phi) < n_per_turn:
        raise InputError(folder, "TypeofProjectionData", f"at least one full rotation ({n_per_turn} views) "
                         f"for a {scan_type.lower()} scan", f"{len(phi)} views")
    ffs = str(first["FlyingFocalSpotMode"] or "FFSNONE").upper()
    if ffs not in FFS_PERIOD:
        raise InputError(folder, "FlyingFocalSpotMode (7033,100E)", f"one of {sorted(FFS_PERIOD)}", ffs)
    if n_per_turn % (2 * FFS_PERIOD[ffs]):
        raise InputError(folder, "NumberofSourceAngularSteps (7033,1013)",
                         f"a multiple of {2 * FFS_PERIOD[ffs]} for {ffs}", n_per_turn)
    shape = str(first["DetectorShape"] or "CYLINDRICAL").upper()
    if shape != "CYLINDRICAL":
        raise InputError(folder, "DetectorShape (7029,100B)", "CYLINDRICAL (flat detectors are not implemented "
                         "for raw projections)", shape)
    central = np.asarray(first["DetectorCentralElement"], dtype=float)
    return HelicalScan(raw, pv["slope"].astype(np.float32), pv["intercept"].astype(np.float32), phi, pv["z"],
                       float(first["DetectorFocalCenterRadialDistance"]), float(first["ConstantRadialDistance"]),
                       float(first["DetectorElementTransverseSpacing"]), float(first["DetectorElementAxialSpacing"]),
                       float(central[0]), float(central[1]), dphi, dz, pv["drho"], ffs, n_per_turn, photons,
                       _water_per_mm(float(first["WaterAttenuationCoefficient"]), folder), scan_type, shape,
                       str(folder), notes=notes)

"""One axial CT series read from a DICOM folder, headers and geometry kept (``denoise --images``).

The slices are sorted by ImagePositionPatient along the slice normal; every file's geometry tags must
be finite and agree (orientation, image and pixel size), and one SeriesInstanceUID per folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from tomoconsensus.ct.io import read_dicom_image
from tomoconsensus.errors import InputError

#: Largest angle between a slice's normal and the patient's z axis still called axial (gantry tilt).
MAX_AXIAL_TILT_DEG = 30.0


@dataclass
class DicomSeries:
    """One axial CT series in slice order, headers kept (for ``denoise --images`` and DICOM output).

    Attributes
    ----------
    hu : ndarray, shape (slices, N, N), float32
        Stored values times RescaleSlope plus RescaleIntercept, per file.
    pixel_spacing_mm : float
        Square in-plane pixel size, the same in every file.
    datasets : list of pydicom.Dataset
        The headers (with their pixel data), sorted by position along the slice normal.
    files : list of Path
        The files, in the same order.
    series_uid : str
    """

    hu: np.ndarray
    pixel_spacing_mm: float
    datasets: list
    files: list[Path]
    series_uid: str


def _dicom_candidates(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name.upper() != "DICOMDIR"
                   and p.suffix.lower() in (".dcm", ".ima", ""))
    dicom = [p for p in files if _has_dicom_preamble(p)]
    if not dicom:
        raise InputError(folder, "files", "a folder with DICOM files of one CT series", "no DICOM file found")
    return dicom


def _has_dicom_preamble(path: Path) -> bool:
    """True for a DICOM Part 10 file (128-byte preamble then 'DICM') or a .dcm file (checked on reading)."""
    if path.suffix.lower() == ".dcm":
        return True
    with open(path, "rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def _slice_normal(ds, path: Path) -> np.ndarray:
    """Unit normal of the slice plane from ImageOrientationPatient; refuses non-axial slices."""
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6 or "ImagePositionPatient" not in ds:
        raise InputError(path, "ImageOrientationPatient/ImagePositionPatient", "the slice geometry tags", "missing")
    _finite_numbers(iop, 6, path, "ImageOrientationPatient")
    _finite_numbers(ds.ImagePositionPatient, 3, path, "ImagePositionPatient")
    normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
    if not np.linalg.norm(normal) > 0:
        raise InputError(path, "ImageOrientationPatient", "two non-parallel unit vectors (row, column)", list(iop))
    tilt = np.degrees(np.arccos(min(1.0, abs(normal[2]) / np.linalg.norm(normal))))
    if tilt > MAX_AXIAL_TILT_DEG:
        raise InputError(path, "ImageOrientationPatient",
                         f"axial slices (normal within {MAX_AXIAL_TILT_DEG:g} degrees of the patient z axis)",
                         [float(v) for v in iop])
    return normal / np.linalg.norm(normal)


def _finite_numbers(value, count: int, path: Path, tag: str) -> np.ndarray:
    """``value`` as ``count`` finite floats; InputError naming the file and tag otherwise (NaN, inf, text)."""
    try:
        numbers = np.asarray([float(v) for v in value], float)
    except (TypeError, ValueError):
        numbers = np.full(0, np.nan)
    if numbers.shape != (count,) or not np.all(np.isfinite(numbers)):
        raise InputError(path, tag, f"{count} finite numbers", str(value))
    return numbers


def read_dicom_series(folder: str | Path) -> DicomSeries:
    """Read one axial CT series from a folder, sorted by ImagePositionPatient along the slice normal.

    Refused with :class:`InputError` (naming the file and tag): no DICOM file, more than one
    SeriesInstanceUID (both named), missing RescaleSlope/Intercept, non-axial or differing
    ImageOrientationPatient, differing image size or pixel spacing, two slices at one position.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "--images", "a folder of DICOM files", "not a folder")
    records = []
    for path in _dicom_candidates(folder):
        hu, spacing, ds = read_dicom_image(path)
        records.append((path, hu, spacing, ds))
    uids = {}
    for path, *_, ds in records:
        uids.setdefault(str(ds.get("SeriesInstanceUID", "")), path)
    if len(uids) > 1:
        (uid_a, file_a), (uid_b, file_b) = list(uids.items())[:2]
        raise InputError(folder, "SeriesInstanceUID", "one series per folder",
                         f"{uid_a} ({file_a.name}) and {uid_b} ({file_b.name})")
    first_path, first_hu, first_spacing, first_ds = records[0]
    normal = _slice_normal(first_ds, first_path)
    for path, hu, spacing, ds in records:
        if not np.allclose(_slice_normal(ds, path), normal, atol=1e-4):
            raise InputError(path, "ImageOrientationPatient", f"the orientation of {first_path.name}",
                             [float(v) for v in ds.ImageOrientationPatient])
        if hu.shape != first_hu.shape:
            raise InputError(path, "Rows/Columns", f"{first_hu.shape} as in {first_path.name}", hu.shape)
        if abs(spacing - first_spacing) > 1e-4:
            raise InputError(path, "PixelSpacing", f"{first_spacing} mm as in {first_path.name}", spacing)
    position = [float(np.dot(np.asarray(r[3].ImagePositionPatient, float), normal)) for r in records]
    order = np.argsort(position, kind="stable")
    for a, b in pairwise(order):
        if abs(position[a] - position[b]) < 1e-3:
            raise InputError(records[b][0], "ImagePositionPatient",
                             f"one slice per position (also at {position[a]:.3f} mm: {records[a][0].name})")
    return DicomSeries(np.stack([records[i][1] for i in order]).astype(np.float32), first_spacing,
                       [records[i][3] for i in order], [records[i][0] for i in order], next(iter(uids)))

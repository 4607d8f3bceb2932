"""Readers for CT inputs: clean images (DICOM folders, .npy/.npz stacks) and measured sinograms.

Each reader validates what it reads and raises :class:`~tomoconsensus.errors.InputError` naming
the file and the field, before any output is written.

Sinogram HDF5 layout (``prepare ct --sinograms``)
-------------------------------------------------
``sinograms``  float (slices, views, channels)  line integrals -log(I/I0), already log-transformed
  *or* ``counts`` (slices, views, channels) with ``i0`` (scalar or (channels,)) detected photons
``slice_id``   str (slices,)                    optional, default ``slice0000``...
``reference``  float (slices, N, N)             optional clean image, in HU
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pydicom.misc
from pydicom.errors import InvalidDicomError

from tomoconsensus.ct.noise import counts_to_line_integrals
from tomoconsensus.errors import GeometryMismatchError, InputError, require_finite
from tomoconsensus.hdf5 import open_hdf5, read_array, read_strings
from tomoconsensus.tomo.geometry import FanBeamGeometry


@dataclass
class ImageStack:
    """Clean CT images in HU.

    Attributes
    ----------
    hu : ndarray, shape (slices, H, W), float32
    pixel_spacing_mm : ndarray, shape (slices,)  (square pixels)
    slice_ids : list of str
    patient_ids : list of str
    """

    hu: np.ndarray
    pixel_spacing_mm: np.ndarray
    slice_ids: list[str]
    patient_ids: list[str]


def _check_square_stack(hu: np.ndarray, source: Path, field: str) -> None:
    if hu.ndim != 3 or hu.shape[1] != hu.shape[2]:
        raise InputError(source, field, "square images, shape (slices, N, N)", hu.shape)
    if len(hu) == 0 or hu.shape[1] == 0:
        raise InputError(source, field, "at least one image", hu.shape)


def _real_array(value, source: Path, field: str) -> np.ndarray:
    """``value`` as float32; InputError for complex, string, object or boolean data (named, one line)."""
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # object arrays in a file opened without pickle
        raise InputError(source, field, "a numeric array (no Python objects)", str(exc)) from None
    if arr.dtype.kind not in "iuf":
        kind = {"c": "complex (CT images are real: take the magnitude or real part first)"}.get(arr.dtype.kind, "")
        raise InputError(source, field, "real numbers in HU", f"dtype {arr.dtype} {kind}".strip())
    return arr.astype(np.float32)


def check_spacing(spacing, n_slices: int, source, field: str = "pixel_spacing_mm") -> np.ndarray:
    """Pixel spacing per slice, shape (n_slices,): finite and > 0 (a scalar applies to all slices)."""
    try:
        spacing = np.asarray(spacing, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(source, field, "numbers in mm", np.asarray(spacing).dtype) from None
    if spacing.ndim == 0:
        spacing = np.full(n_slices, float(spacing))
    if spacing.shape != (n_slices,):
        raise InputError(source, field, f"one spacing per slice, shape ({n_slices},) or ({n_slices}, 2)", spacing.shape)
    if not np.all(np.isfinite(spacing) & (spacing > 0)):
        raise InputError(source, field, "finite pixel spacings > 0 mm",
                         float(spacing[~(np.isfinite(spacing) & (spacing > 0))][0]))
    return spacing


#: Largest |HU| read from a DICOM image: CT numbers span -1024 to about 3e4 (metal); beyond 1e6 the
#: rescale tags are wrong (and float32 would overflow at 3.4e38).
MAX_ABS_HU = 1e6


def _dicom_number(ds: pydicom.Dataset, tag: str, path: Path, nonzero: bool = False) -> float:
    try:
        value = float(ds[tag].value)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or (nonzero and value == 0):
        raise InputError(path, tag, "a finite number" + (", not 0" if nonzero else ""), ds[tag].value)
    return value


def read_dicom_image(path: Path, ds: pydicom.Dataset | None = None) -> tuple[np.ndarray, float, pydicom.Dataset]:
    """One DICOM CT image -> (HU image (H, W) float32, pixel spacing mm, header)."""
    if ds is None:
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError, EOFError, ValueError, TypeError) as exc:
            raise InputError(path, "file", "a readable DICOM file", str(exc)) from None
    if "PixelData" not in ds:
        raise InputError(path, "PixelData", "an image (the DICOM has no pixel data)")
    for tag in ("RescaleSlope", "RescaleIntercept"):
        if tag not in ds:
            raise InputError(path, tag, "a rescale tag to convert stored values to HU", "missing")
    slope = _dicom_number(ds, "RescaleSlope", path, nonzero=True)
    intercept = _dicom_number(ds, "RescaleIntercept", path)
    try:
        pixels = ds.pixel_array.astype(np.float32)
    except Exception as exc:  # pydicom raises many types for truncated/compressed data
        raise InputError(path, "PixelData", "decodable pixel data", str(exc)) from None
    hu = pixels.astype(np.float64) * slope + intercept  # float64: a huge slope is refused, not an overflow
    if not np.all(np.abs(hu) < MAX_ABS_HU):
        raise InputError(path, "RescaleSlope/RescaleIntercept", f"stored values x slope + intercept within "
                         f"+-{MAX_ABS_HU:g} HU (CT numbers)", f"slope {slope:g}, intercept {intercept:g}: up to "
                         f"{np.nanmax(np.abs(hu)):.3g} HU")
    hu = hu.astype(np.float32)
    if hu.ndim != 2 or hu.shape[0] != hu.shape[1]:
        raise InputError(path, "Rows/Columns", "a single square image", hu.shape)
    spacing = ds.get("PixelSpacing")
    try:
        dy, dx = (float(v) for v in spacing)
    except (TypeError, ValueError):
        raise InputError(path, "PixelSpacing", "square pixels [d, d] in mm", spacing) from None
    if not (math.isfinite(dy) and dy > 0) or abs(dy - dx) > 1e-4:
        raise InputError(path, "PixelSpacing", "square pixels [d, d] with d > 0 mm", spacing)
    return hu, dy, ds


#: Media Storage Directory (DICOMDIR): an index of a DICOM folder, not an image.
_DICOMDIR_UID = "1.2.840.10008.1.3.10"


def _folder_image(path: Path) -> pydicom.Dataset | None:
    """The header of a DICOM image in a folder, or None for what a DICOM folder may also hold.

    Skipped: files that are not DICOM (README, notes; but a ``.dcm``/``.ima`` file must be DICOM),
    DICOMDIR index files and DICOM objects without pixel data (reports, structure sets).
    """
    if not pydicom.misc.is_dicom(path):
        if path.suffix.lower() in (".dcm", ".ima"):
            raise InputError(path, "file", "a DICOM file (no 'DICM' preamble found)")
        return None
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError) as exc:
        raise InputError(path, "file", "a readable DICOM file", str(exc)) from None
    sop = str(getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", ""))
    if path.name.upper() == "DICOMDIR" or sop == _DICOMDIR_UID or "PixelData" not in ds:
        return None
    return ds


def read_dicom_folder(folder: Path) -> ImageStack:
    """All DICOM CT images in a folder (recursively), sorted by patient and table position."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".dcm", ".ima", ""))
    if not files:
        raise InputError(folder, "files", "a folder with DICOM (.dcm) files", "none found")
    records = []
    for path in files:
        ds = _folder_image(path)
        if ds is None:
            continue
        hu, spacing, ds = read_dicom_image(path, ds)
        try:
            z = (float(ds.ImagePositionPatient[2]) if "ImagePositionPatient" in ds
                 else float(ds.get("InstanceNumber", 0)))
        except (TypeError, ValueError, IndexError):
            raise InputError(path, "ImagePositionPatient", "the table position [x, y, z] in mm (or an InstanceNumber)",
                             ds.get("ImagePositionPatient")) from None
        records.append((str(ds.get("PatientID", "")), z, path.stem, hu, spacing))
    if not records:
        raise InputError(folder, "files", "a folder with DICOM images", f"none among {len(files)} files")
    shapes = {r[3].shape for r in records}
    if len(shapes) != 1:
        raise InputError(folder, "Rows/Columns", "the same image size in every file", sorted(shapes))
    records.sort(key=lambda r: (r[0], r[1], r[2]))
    return ImageStack(np.stack([r[3] for r in records]), np.array([r[4] for r in records]),
                      [r[2] for r in records], [r[0] for r in records])


IMAGE_SUFFIXES = (".dcm", ".ima", ".npy", ".npz")


def _slice_id(name: str) -> str:
    """A slice id from a stored file name: the name without an image-file suffix.

    Only known suffixes are removed, so ids with dots (``1.3.6.1.4.1.9328.50.1.0117_z-12.5``, a
    DICOM-UID patient id and a decimal table position) keep them.
    """
    name = Path(name).name
    return name[: -len(Path(name).suffix)] if Path(name).suffix.lower() in IMAGE_SUFFIXES else name


def read_image_array(path: Path, default_spacing_mm: float | None = None) -> ImageStack:
    """A .npy (slices, N, N) or .npz (``hu`` or ``images``, optional ``pixel_spacing_mm``) HU stack."""
    path = Path(path)
    try:
        data = np.load(path)  # allow_pickle=False: object arrays are refused, not unpickled
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(path, "file", "a readable .npy/.npz file", str(exc)) from None
    spacing = None
    ids = None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            key = next((k for k in ("hu", "images") if k in data), None)
            if key is None:
                raise InputError(path, "hu", "an array 'hu' (or 'images') of HU values", sorted(data.files))
            hu = _real_array(_npz_item(data, key, path), path, key)
            if "pixel_spacing_mm" in data:
                spacing = _npz_item(data, "pixel_spacing_mm", path)
                spacing = spacing[:, 0] if getattr(spacing, "ndim", 0) == 2 else spacing
            if "files" in data:
                ids = [_slice_id(str(f)) for f in _npz_item(data, "files", path)]
        field = key
    else:
        hu, field = _real_array(data, path, "array"), "array"
    if hu.ndim == 2:
        hu = hu[None]
    _check_square_stack(hu, path, field)
    require_finite(hu, path, field)
    spacing_field = "pixel_spacing_mm"
    if spacing is None:
        if default_spacing_mm is None:
            raise InputError(path, "pixel_spacing_mm", "pixel spacing in the file or --pixel-spacing-mm")
        spacing, spacing_field = default_spacing_mm, "--pixel-spacing-mm"
    spacing = check_spacing(spacing, len(hu), path, spacing_field)
    if ids is not None and len(ids) != len(hu):
        raise InputError(path, "files", f"{len(hu)} names, one per image", len(ids))
    ids = ids or [f"{path.stem}_{i:04d}" for i in range(len(hu))]
    patients = [i.split("_")[0] for i in ids]
    return ImageStack(hu, spacing, ids, patients)


def _npz_item(data, key: str, path: Path) -> np.ndarray:
    try:
        return data[key]
    except ValueError as exc:  # an object array (would need unpickling)
        raise InputError(path, key, "a numeric array (object arrays are refused: loading them could run code)",
                         str(exc).split(";")[0]) from None


def read_images(path: str | Path, default_spacing_mm: float | None = None) -> ImageStack:
    """Clean images from a DICOM folder, a single DICOM file, or a .npy/.npz stack."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "--images", "an existing folder or file", "not found")
    if path.is_dir():
        return read_dicom_folder(path)
    if path.suffix.lower() in (".npy", ".npz"):
        return read_image_array(path, default_spacing_mm)
    hu, spacing, ds = read_dicom_image(path)
    return ImageStack(hu[None], np.array([spacing]), [path.stem], [str(ds.get("PatientID", ""))])


@dataclass
class SinogramStack:
    """Measured sinograms of line integrals, shape (slices, views, channels), float32."""

    sinograms: np.ndarray
    slice_ids: list[str]
    reference_hu: np.ndarray | None


def validate_sinogram(sino: np.ndarray, geom: FanBeamGeometry, source, field: str) -> None:
    """Check a sinogram stack (slices, views, channels) against the geometry and for NaN/inf."""
    if sino.ndim != 3 or sino.shape[1:] != geom.sinogram_shape:
        raise GeometryMismatchError(source, field,
                                    f"shape (slices, {geom.n_views}, {geom.n_detectors}) for geometry "
                                    f"'{geom.name}' (views, channels)", sino.shape)
    require_finite(sino, source, field)


def read_sinograms(path: str | Path, geom: FanBeamGeometry) -> SinogramStack:
    """Read and validate a sinogram HDF5 file (layout in the module docstring)."""
    path = Path(path)
    with open_hdf5(path, "HDF5 sinogram file") as f:
        if "sinograms" in f:
            sino = np.asarray(read_array(f, "sinograms", path, "line integrals (slices, views, channels)"), np.float32)
            validate_sinogram(sino, geom, path, "sinograms")
        elif "counts" in f:
            counts = np.asarray(read_array(f, "counts", path, "photon counts (slices, views, channels)"), np.float64)
            validate_sinogram(counts, geom, path, "counts")
            if counts.min(initial=0) < 0:
                raise InputError(path, "counts", "non-negative photon counts", f"minimum {counts.min()}")
            if "i0" not in f:
                raise InputError(path, "i0", "incident photons (scalar or per channel) beside 'counts'", "missing")
            i0 = np.asarray(read_array(f, "i0", path, "incident photons, a number or one per channel"), np.float64)
            if i0.shape not in ((), (1,), (geom.n_detectors,)):
                raise InputError(path, "i0", f"a scalar or one value per channel, shape ({geom.n_detectors},)",
                                 i0.shape)
            if not np.all(np.isfinite(i0) & (i0 > 0)):
                raise InputError(path, "i0", "finite, positive incident photons",
                                 float(i0[~(np.isfinite(i0) & (i0 > 0))][0]) if i0.ndim else float(i0))
            sino = counts_to_line_integrals(counts, i0)
        else:
            raise InputError(path, "sinograms", "a dataset 'sinograms' (line integrals) or 'counts' + 'i0'",
                             sorted(f.keys()))
        if len(sino) == 0:
            raise InputError(path, "sinograms" if "sinograms" in f else "counts", "at least one slice", sino.shape)
        ids = read_strings(f["slice_id"], path) if "slice_id" in f else [f"slice{i:04d}" for i in range(len(sino))]
        if len(ids) != len(sino):
            raise InputError(path, "slice_id", f"{len(sino)} ids, one per sinogram", len(ids))
        ref = None
        if "reference" in f:
            ref = np.asarray(read_array(f, "reference", path, "clean images in HU (slices, N, N)"), np.float32)
            expected = (len(sino), geom.image_size, geom.image_size)
            if ref.shape != expected:
                raise GeometryMismatchError(path, "reference", f"shape {expected}", ref.shape)
            require_finite(ref, path, "reference")
    return SinogramStack(sino, ids, ref)

"""Write denoised CT slices as a new DICOM series derived from the input series.

Each output file is a copy of its input file's header (patient, study, frame of reference,
ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness, rescale and window
tags unchanged) with:

* new pixel data: int16, stored = round((HU - RescaleIntercept) / RescaleSlope) with the *input's*
  rescale, clipped to [-32768, 32767] (the number of clipped pixels is counted and warned about);
  pixel-module tags from pydicom's :meth:`~pydicom.dataset.Dataset.set_pixel_data`;
* a new SOPInstanceUID per file and one new SeriesInstanceUID (:func:`pydicom.uid.generate_uid`),
  SeriesNumber + 1000;
* ImageType ``DERIVED\\SECONDARY\\<input value 3...>``, SeriesDescription and DerivationDescription
  naming the method and the tomoconsensus version, SourceImageSequence pointing at the input image;
* Explicit VR Little Endian, uncompressed, written with a valid File Meta Information header.

Tags whose meaning the new pixel data would contradict are removed (smallest/largest pixel value,
pixel padding value and range).
"""

from __future__ import annotations

import copy
import datetime as _dt
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

INT16 = np.iinfo(np.int16)
#: Tags that describe the old pixel values and would be wrong for the new ones.
STALE_PIXEL_TAGS = ("SmallestImagePixelValue", "LargestImagePixelValue", "SmallestPixelValueInSeries",
                    "LargestPixelValueInSeries", "PixelPaddingValue", "PixelPaddingRangeLimit")


class ClippedPixelsWarning(UserWarning):
    """Denoised values outside what int16 with the input's rescale can represent were clipped."""


def stored_values(hu: np.ndarray, slope: float, intercept: float) -> tuple[np.ndarray, int]:
    """HU (H, W) -> (int16 stored values, number of pixels clipped to the int16 range)."""
    stored = np.rint((np.asarray(hu, np.float64) - intercept) / slope)
    clipped = int(np.count_nonzero((stored < INT16.min) | (stored > INT16.max)))
    return np.clip(stored, INT16.min, INT16.max).astype(np.int16), clipped


def derived_slice(source: Dataset, hu: np.ndarray, series_uid: str, description: str,
                  derivation: str) -> tuple[Dataset, int]:
    """One derived image: ``source``'s header with the pixels ``hu`` (H, W) and new UIDs; (dataset, clipped)."""
    ds = copy.deepcopy(source)
    stored, clipped = stored_values(hu, float(source.RescaleSlope), float(source.RescaleIntercept))
    for keyword in STALE_PIXEL_TAGS:
        if keyword in ds:
            del ds[keyword]
    ds.file_meta = copy.deepcopy(source.file_meta) if hasattr(source, "file_meta") else Dataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = source.SOPClassUID
    ds.set_pixel_data(stored, photometric_interpretation="MONOCHROME2", bits_stored=16)  # new SOPInstanceUID
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = int(source.get("SeriesNumber") or 0) + 1000
    kept = list(source.get("ImageType", []))[2:] if source.get("ImageType") else []
    ds.ImageType = ["DERIVED", "SECONDARY", *kept]
    ds.SeriesDescription = description[:64]  # LO: at most 64 characters
    ds.DerivationDescription = derivation[:1024]  # ST
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    ds.SourceImageSequence = [reference]
    now = _dt.datetime.now()
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    return ds, clipped


def write_derived_series(sources: Sequence[Dataset], hu: np.ndarray, folder: str | Path, description: str,
                         derivation: str) -> tuple[list[Path], int]:
    """Write one file per slice into ``folder`` (which must exist); returns (paths, clipped pixels).

    Parameters
    ----------
    sources : sequence of Dataset
        Input headers, in slice order.
    hu : ndarray (slices, H, W)
        Denoised images in HU, on the input grid.
    description, derivation : str
        SeriesDescription (cut at 64 characters) and DerivationDescription.
    """
    folder = Path(folder)
    if len(sources) != len(hu):
        raise ValueError(f"{len(sources)} headers for {len(hu)} images")
    series_uid = generate_uid()
    paths, clipped = [], 0
    for i, (source, image) in enumerate(zip(sources, hu, strict=True)):
        ds, n = derived_slice(source, image, series_uid, description, derivation)
        clipped += n
        path = folder / f"slice_{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    if clipped:
        warnings.warn(f"{clipped} pixels outside the int16 range of the input's rescale were clipped",
                      ClippedPixelsWarning, stacklevel=2)
    return paths, clipped

"""Stored projection pixels of one DICOM-CT-PD file and their rescale to line integrals.

``p = stored * RescaleSlope + RescaleIntercept`` (both required: the standard gives no default for a
CT-PD file, and a guessed slope of 1 turned stored integers into 17,800 HU). Uncompressed little-endian
pixels are read as they are stored; compressed (RLE, JPEG, ...) and big-endian transfer syntaxes go
through pydicom's pixel handlers (``Dataset.pixel_array``; RLE is decoded by pydicom itself), and a
syntax without an installed decoder is refused in one line.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pydicom

from tomoconsensus.errors import InputError, one_line


def rescale_of(ds: pydicom.Dataset, path: Path) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept): both required (the standard has no default), slope > 0."""
    out = []
    for keyword, tag in (("RescaleSlope", "(0028,1053)"), ("RescaleIntercept", "(0028,1052)")):
        if keyword not in ds:
            raise InputError(path, f"{keyword} {tag}", "the rescale of stored values to line integrals "
                             "(required, no default)", "missing")
        raw = "?"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                raw = ds[keyword].value
            value = float(raw)
        except (TypeError, ValueError):
            raise InputError(path, f"{keyword} {tag}", "one decimal number", str(raw)[:40]) from None
        if not math.isfinite(value):
            raise InputError(path, f"{keyword} {tag}", "a finite number", value)
        out.append(value)
    if out[0] <= 0:
        raise InputError(path, "RescaleSlope (0028,1053)", "a positive factor (stored values -> line integrals)",
                         out[0])
    return out[0], out[1]


def _decoded_pixels(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    """Pixels of a compressed (or big-endian) file through pydicom's pixel handlers (RLE built in)."""
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(ds.pixel_array)
    except (RuntimeError, NotImplementedError, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise InputError(path, "PixelData", f"pixel data that pydicom can decode (transfer syntax {syntax.name}: "
                         "install its decoder, e.g. pylibjpeg, or store uncompressed)",
                         one_line(str(exc))[:120]) from None


def pixels_of(ds: pydicom.Dataset, n_rows: int, n_cols: int, path: Path) -> np.ndarray:
    """Stored values, shape (n_rows, n_cols) = (detector rows, channels), whatever the Rows/Columns layout
    and the transfer syntax."""
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if {rows, cols} != {n_rows, n_cols}:
        raise InputError(path, "Rows/Columns", f"{n_cols} x {n_rows} or {n_rows} x {n_cols} "
                         "(NumberofDetectorColumns/Rows)", f"{rows} x {cols}")
    if "PixelData" not in ds:
        raise InputError(path, "PixelData", "projection pixel data", "missing")
    bits = int(ds.get("BitsAllocated", 16))
    if bits not in (8, 16, 32):
        raise InputError(path, "BitsAllocated", "8, 16 or 32", bits)
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is not None and syntax.is_transfer_syntax and (syntax.is_compressed or not syntax.is_little_endian):
        pixels = _decoded_pixels(ds, path)
        if pixels.shape != (rows, cols):
            raise InputError(path, "PixelData", f"one {rows} x {cols} frame", f"shape {pixels.shape}")
    else:
        dtype = np.dtype(f"<{'i' if int(ds.get('PixelRepresentation', 0)) else 'u'}{bits // 8}")
        data = ds.PixelData
        if len(data) < rows * cols * dtype.itemsize:
            raise InputError(path, "PixelData", f"{rows * cols * dtype.itemsize} bytes ({rows} x {cols} x {bits} "
                             "bit)", f"{len(data)} bytes (truncated file)")
        pixels = np.frombuffer(data, dtype, count=rows * cols).reshape(rows, cols)
    # TCIA layout: Rows = channels, Columns = detector rows; a square detector is read that way too
    return pixels.T if rows == n_cols else pixels

"""DICOM-CT-PD private tags: the dictionary, and decoding by the VR the file carries, else by content.

The dictionary (:data:`PRIVATE_TAGS`) is the one of the readers that follow the DICOM-CT-PD User
Manual (Chen et al., Med. Phys. 42(12) 6964, 2015; tag table in Moen et al., Med. Phys. 48(2)
902, 2021, Table IV): FreeCT's DCMTK dictionary (``DicomDataSet.cpp``) and helix2fan's reader.
In particular WaterAttenuationCoefficient (7041,1001) is DS (a decimal string), the geometry FL
(32-bit float) and the counts US (16-bit unsigned).

Decoding of one element with raw value ``b`` (bytes) or a typed value ``v``:

* explicit-VR files: pydicom has already decoded ``v`` by the VR written in the file (FL, DS, US,
  IS, CS, ...); numbers given as text (DS, IS, or any string VR) are parsed as decimal numbers;
* implicit-VR files (and explicit ``UN``/``OB``): ``b`` carries no VR. It is read as text (DS/IS)
  when it is ASCII made only of ``0-9 + - . e E``, spaces and ``\\`` separators and every part
  parses as a number (a binary FL of a geometry value never looks like that: its top byte would be
  a digit, i.e. ``|x| < 1.2e-4`` with all three other bytes printable), else as binary numbers of
  the dictionary's VR (little endian; FL for a DS tag such as WaterAttenuationCoefficient, which
  other dictionaries declare FL).

Every numeric value must be finite (a NaN table position or photon count is refused by name).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.multival import MultiValue

from tomoconsensus.errors import InputError

#: name -> (group, element, VR, values per file), as in FreeCT's dictionary / Table IV.
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
    "NumberofSpectra": (0x7033, 0x1061, "US", "1"),
    "SpectrumIndex": (0x7033, 0x1063, "US", "1"),
    "PhotonStatistics": (0x7033, 0x1065, "FL", "1-n"),
    "TypeofProjectionData": (0x7037, 0x1009, "CS", "1"),
    "TypeofProjectionGeometry": (0x7037, 0x100A, "CS", "1"),
    "BeamHardeningCorrectionFlag": (0x7039, 0x1003, "CS", "1"),
    "GainCorrectionFlag": (0x7039, 0x1004, "CS", "1"),
    "DarkFieldCorrectionFlag": (0x7039, 0x1005, "CS", "1"),
    "FlatFieldCorrectionFlag": (0x7039, 0x1006, "CS", "1"),
    "BadPixelCorrectionFlag": (0x7039, 0x1007, "CS", "1"),
    "ScatterCorrectionFlag": (0x7039, 0x1008, "CS", "1"),
    "LogFlag": (0x7039, 0x1009, "CS", "1"),
    "WaterAttenuationCoefficient": (0x7041, 0x1001, "DS", "1"),
}
#: The (7039,1003-1009) preprocessing flags, recorded in the prepared file.
PREPROCESSING_FLAGS = ("BeamHardeningCorrectionFlag", "GainCorrectionFlag", "DarkFieldCorrectionFlag",
                       "FlatFieldCorrectionFlag", "BadPixelCorrectionFlag", "ScatterCorrectionFlag", "LogFlag")
YES = {"YES", "Y", "TRUE", "T", "ON", "1", "APPLIED"}
NO = {"NO", "N", "FALSE", "F", "OFF", "0", "NONE", "NOT APPLIED"}

_NUMERIC = {"FL", "FD", "US", "UL", "SS", "SL", "DS", "IS"}
_BINARY = {"FL": "<f4", "FD": "<f8", "US": "<u2", "UL": "<u4", "SS": "<i2", "SL": "<i4",
           "OF": "<f4", "OD": "<f8", "OW": "<u2", "OL": "<u4"}
_TEXT_NUMBERS = re.compile(rb"[ ]*[-+0-9.eE]+[ ]*(\\[ ]*[-+0-9.eE]+[ ]*)*")


def tag_label(name: str) -> str:
    """``"Name (gggg,eeee)"`` for messages."""
    group, element = PRIVATE_TAGS[name][:2]
    return f"{name} ({group:04X},{element:04X})"


def _parse_text(text: str, path: Path, name: str, vr: str) -> np.ndarray:
    try:
        return np.array([float(part) for part in text.strip(" \x00").split("\\")], dtype=np.float64)
    except ValueError:
        raise InputError(path, tag_label(name), f"a number ({vr} as binary, or a decimal string)", text) from None


def _as_text_numbers(raw: bytes) -> str | None:
    """``raw`` as DS/IS text if it is one (trailing spaces, or one NUL after >= 3 characters, allowed)."""
    body = raw[:-1] if len(raw) >= 4 and raw.endswith(b"\x00") and not raw.endswith(b"\x00\x00") else raw
    if not _TEXT_NUMBERS.fullmatch(body):
        return None
    text = body.decode("ascii")
    try:
        [float(part) for part in text.split("\\")]
    except ValueError:
        return None
    return text


def _printable(raw: bytes) -> bool:
    text = raw.rstrip(b"\x00 ")
    return bool(text) and all(32 <= byte < 127 for byte in text)


def _from_bytes(raw: bytes, file_vr: str, vr: str, path: Path, name: str) -> tuple[object, str]:
    """Bytes without a usable VR (implicit VR, UN, OB) or of a binary VR (OF, OD, OW, OL)."""
    if file_vr in _BINARY:
        dtype, found = _BINARY[file_vr], file_vr
    elif vr not in _NUMERIC:
        return raw.decode("ascii", "replace").strip("\x00 "), f"{vr} (text, no VR in file)"
    elif (text := _as_text_numbers(raw)) is not None:
        return _parse_text(text, path, name, vr), "DS/IS (text, no VR in file)"
    elif vr not in _BINARY and _printable(raw):  # a decimal-string tag holding other text
        raise InputError(path, tag_label(name), f"a decimal number ({vr})", raw.rstrip(b"\x00 ").decode("ascii"))
    else:  # binary numbers: the dictionary's VR, FL where the dictionary says DS (as other dictionaries do)
        binary = vr if vr in _BINARY else "FL"
        dtype, found = _BINARY[binary], f"{binary} (binary, no VR in file)"
    size = np.dtype(dtype).itemsize
    if len(raw) % size:
        raise InputError(path, tag_label(name), f"numbers ({found.split()[0]}: {size} bytes each, or a decimal "
                         "string)", raw.rstrip(b"\x00 ").decode("ascii") if _printable(raw) else f"{len(raw)} bytes")
    return np.frombuffer(raw, dtype).astype(np.float64), found


def decode_private(ds: pydicom.Dataset, name: str, path: Path) -> tuple[object, str | None]:
    """(value, VR found) of a private tag: float / ndarray for numbers, str for CS; (None, None) if absent.

    Raises
    ------
    InputError
        A number that does not parse, NaN or inf, or the wrong count of values.
    """
    group, element, vr, vm = PRIVATE_TAGS[name]
    tag = (group << 16) | element
    if tag not in ds:
        return None, None
    with warnings.catch_warnings():  # pydicom warns about values it keeps as given: judged here instead
        warnings.simplefilter("ignore")
        elem = ds[tag]
        value, file_vr = elem.value, str(elem.VR)
    if value is None or (isinstance(value, (bytes, bytearray, str, list, MultiValue)) and len(value) == 0):
        return None, None  # an empty element: unknown, as if absent
    if isinstance(value, (bytes, bytearray)):
        value, found = _from_bytes(bytes(value), file_vr, vr, path, name)
    else:
        found = file_vr
    if vr not in _NUMERIC:
        return (str(value).strip("\x00 ").upper() if value is not None else ""), found
    if isinstance(value, np.ndarray):
        arr = value
    else:
        items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
        if any(isinstance(item, (str, bytes)) for item in items):
            arr = _parse_text("\\".join(str(item) for item in items), path, name, vr)
        else:
            try:
                arr = np.array([float(item) for item in items], dtype=np.float64)
            except (TypeError, ValueError):
                raise InputError(path, tag_label(name), f"numbers ({vr})", str(value)[:40]) from None
    finite = np.isfinite(arr)
    if not finite.all():
        bad = "NaN" if np.isnan(arr).any() else "inf"
        raise InputError(path, tag_label(name), "finite numbers", f"{bad} in {arr.size - finite.sum()} of "
                         f"{arr.size} values")
    if vm in ("1", "2") and arr.size != int(vm):
        raise InputError(path, tag_label(name), "one value" if vm == "1" else "two values", f"{arr.size} values")
    return (float(arr[0]) if vm == "1" else arr), found


def preprocessing_flags(values: dict, path: Path) -> dict[str, str]:
    """The (7039,1003-1009) flags as found ("not in file" when absent); refuses data that is not post-log.

    DICOM-CT-PD stores line integrals (after the log); LogFlag = NO means intensities, which cannot
    be reconstructed as line integrals.
    """
    flags = {name: (values[name] or "not in file") for name in PREPROCESSING_FLAGS}
    log = values["LogFlag"]
    if log is not None and log not in YES:
        what = "pre-log intensities" if log in NO else "an unknown value"
        raise InputError(path, tag_label("LogFlag"), "YES (post-log line integrals; pre-log data are not "
                         "supported)", f"{log!r}: {what}")
    return flags

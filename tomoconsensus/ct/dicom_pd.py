"""DICOM-CT-PD raw projection data (TCIA "LDCT-and-Projection-data"): one file per projection.

Format: Chen B. et al., Med. Phys. 42(12) 6964 (2015); tag table: Moen T.R. et al., Med. Phys.
48(2) 902 (2021), Table IV. Pixel values are post-log line integrals stored as integers with
``RescaleSlope`` / ``RescaleIntercept`` (both required, slope > 0); uncompressed or compressed
(RLE and whatever pydicom's pixel handlers decode) transfer syntaxes. The geometry is in private
tags, decoded by :mod:`tomoconsensus.ct.dicom_pd_tags` (by the VR the file carries, else by content).

Refused, in one line naming the file and the tag: pre-log data (LogFlag), a detector that is not
CYLINDRICAL, multi-source / multi-spectrum data (NumberofSpectra > 1 or SpectrumIndex differing),
a missing or non-positive rescale, NaN or inf in any numeric tag, non-positive geometry.

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
rows). In tomoconsensus' image frame (``y_img = -y_patient``, see :mod:`tomoconsensus.tomo.geometry`)
the focal centre is at ``rho (cos phi, sin phi)``, i.e. at FBP view angle ``theta = phi + pi/2``,
and tomoconsensus' fan angle is the negative of the file's: :func:`image_view_angle`,
:func:`channel_of_fan_angle`, :func:`row_of_height` convert.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from tqdm.auto import tqdm

from tomoconsensus.ct.dicom_pd_pixels import pixels_of, rescale_of
from tomoconsensus.ct.dicom_pd_tags import PRIVATE_TAGS, decode_private, preprocessing_flags, tag_label
from tomoconsensus.errors import InputError, one_line

#: Tags without which a scan cannot be rebinned.
REQUIRED = ("DetectorElementTransverseSpacing", "DetectorElementAxialSpacing", "NumberofDetectorRows",
            "NumberofDetectorColumns", "DetectorFocalCenterAngularPosition", "DetectorFocalCenterAxialPosition",
            "DetectorFocalCenterRadialDistance", "ConstantRadialDistance", "DetectorCentralElement",
            "NumberofSourceAngularSteps", "WaterAttenuationCoefficient")
#: Tags that must be the same in every file of a scan.
CONSTANT = ("DetectorElementTransverseSpacing", "DetectorElementAxialSpacing", "DetectorShape",
            "NumberofDetectorRows", "NumberofDetectorColumns", "DetectorFocalCenterRadialDistance",
            "ConstantRadialDistance", "DetectorCentralElement", "FlyingFocalSpotMode",
            "NumberofSourceAngularSteps", "TypeofProjectionData", "WaterAttenuationCoefficient",
            "NumberofSpectra", "SpectrumIndex", "TypeofProjectionGeometry", "BeamHardeningCorrectionFlag",
            "GainCorrectionFlag", "DarkFieldCorrectionFlag", "FlatFieldCorrectionFlag", "BadPixelCorrectionFlag",
            "ScatterCorrectionFlag", "LogFlag")
#: Geometry that must be > 0 (a zero would divide or give an empty scan).
POSITIVE = ("DetectorElementTransverseSpacing", "DetectorElementAxialSpacing", "NumberofDetectorRows",
            "NumberofDetectorColumns", "DetectorFocalCenterRadialDistance", "ConstantRadialDistance",
            "NumberofSourceAngularSteps", "WaterAttenuationCoefficient")
FFS_PERIOD = {"FFSNONE": 1, "FFSZ": 2, "FFSXY": 2, "FFSXYZ": 4}


def image_view_angle(phi_rad):
    """FBP view angle ``theta`` (tomoconsensus convention) of a source at file angle ``phi``."""
    return np.asarray(phi_rad) + math.pi / 2


def channel_of_fan_angle(gamma_rad, central_channel: float, dgamma: float):
    """0-based (fractional) file channel ``j`` hit by the ray at tomoconsensus fan angle ``gamma``."""
    return central_channel - 1 - np.asarray(gamma_rad) / dgamma


def row_of_height(v_mm, central_row: float, row_spacing_mm: float):
    """0-based (fractional) file row ``k`` at axial offset ``v`` (mm at the detector, +z)."""
    return central_row - 1 - np.asarray(v_mm) / row_spacing_mm


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
    ffs_shift_tags : str
        Which convention the (7033,100B/100C) shift tags followed (see :func:`_shift_tags`).
    file_info : dict
        What the files said and how they were read: preprocessing flags, VRs found, transfer syntax.
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
    ffs_shift_tags: str = ""
    file_info: dict = field(default_factory=dict)

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


def _read_one(path: Path) -> tuple[pydicom.Dataset, dict, dict]:
    """(dataset, private values by name, VR found by name) of one file, its geometry checked."""
    try:
        with warnings.catch_warnings():  # pydicom warns about odd values; they are judged below
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise InputError(path, "file", "a readable DICOM-CT-PD file", one_line(str(exc))) from None
    decoded = {name: decode_private(ds, name, path) for name in PRIVATE_TAGS}
    values = {name: value for name, (value, _) in decoded.items()}
    no_geometry = values["NumberofDetectorRows"] is None and values["DetectorFocalCenterAngularPosition"] is None
    if no_geometry and ("ImagePositionPatient" in ds or "PixelSpacing" in ds):
        raise InputError(path, "DetectorFocalCenterAngularPosition (7031,1001)",
                         "raw projections (DICOM-CT-PD); this looks like a folder of CT images: use --images",
                         "missing")
    for name in REQUIRED:
        if values[name] is None:
            raise InputError(path, tag_label(name), "this geometry tag", "missing")
    for name in POSITIVE:
        if values[name] <= 0:
            raise InputError(path, tag_label(name), "a positive value", values[name])
    if values["ConstantRadialDistance"] <= values["DetectorFocalCenterRadialDistance"]:
        raise InputError(path, tag_label("ConstantRadialDistance"), "a focal-centre-to-detector distance above "
                         f"the focal-centre radius {values['DetectorFocalCenterRadialDistance']} mm",
                         values["ConstantRadialDistance"])
    if (values["NumberofSpectra"] or 1) != 1:
        raise InputError(path, tag_label("NumberofSpectra"), "1 (single-source, single-spectrum scans; dual-source "
                         "or dual-energy projections are not supported)", values["NumberofSpectra"])
    return ds, values, {name: vr for name, (_, vr) in decoded.items() if vr is not None}


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


def read_projections(folder: str | Path, progress: bool = True,
                     stop_check: Callable[[], None] | None = None) -> HelicalScan:
    """Read, check and order every projection file of one scan (any file names).

    ``stop_check`` is called between files (a safe point to stop on a signal, see
    :class:`tomoconsensus.signals.StopRequest`).

    Raises
    ------
    InputError
        Unreadable or truncated file, missing geometry tag, files of two scans, geometry that
        differs between files, CT images instead of projections, an axial scan shorter than a turn,
        and what the module docstring lists as refused.
    """
    files = list_projection_files(folder)
    first_ds, first, vrs = _read_one(files[0])
    flags = preprocessing_flags(first, files[0])  # refuses pre-log data before the (long) read
    series = str(first_ds.get("SeriesInstanceUID", ""))
    n_views = len(files)
    n_rows, n_cols = int(first["NumberofDetectorRows"]), int(first["NumberofDetectorColumns"])
    raw = None
    per_view = {k: np.zeros(n_views) for k in ("instance", "slope", "intercept", "phi", "z", "dphi", "dz", "drho")}
    photons = np.full((n_views, n_cols), np.nan) if first["PhotonStatistics"] is not None else None
    for i, path in enumerate(tqdm(files, desc="read projections", unit="file", disable=not progress)):
        if stop_check is not None:
            stop_check()
        ds, values = (first_ds, first) if i == 0 else _read_one(path)[:2]
        if str(ds.get("SeriesInstanceUID", "")) != series:
            raise InputError(path, "SeriesInstanceUID", f"one scan per folder ({series} as in {files[0].name})",
                             str(ds.get("SeriesInstanceUID", "")))
        for name in CONSTANT:
            if not _same(values[name], first[name]):
                raise InputError(path, tag_label(name), f"the same value in every file ({first[name]} in "
                                 f"{files[0].name})", values[name])
        pixels = pixels_of(ds, int(values["NumberofDetectorRows"]), int(values["NumberofDetectorColumns"]), path)
        if raw is None:
            raw = np.empty((n_views, n_rows, n_cols), dtype=pixels.dtype)
        raw[i] = pixels
        pv = per_view
        pv["instance"][i] = float(ds.get("InstanceNumber", i))
        pv["slope"][i], pv["intercept"][i] = rescale_of(ds, path)
        pv["phi"][i] = values["DetectorFocalCenterAngularPosition"]
        pv["z"][i] = values["DetectorFocalCenterAxialPosition"]
        pv["dphi"][i] = values["SourceAngularPositionShift"] or 0.0
        pv["dz"][i] = values["SourceAxialPositionShift"] or 0.0
        pv["drho"][i] = values["SourceRadialDistanceShift"] or 0.0
        _photons(photons, i, values["PhotonStatistics"], n_cols, path, files[0])
    scan = _assemble(Path(folder), files, first, raw, per_view, photons)
    scan.patient_id = str(first_ds.get("PatientID", "")) or Path(folder).name
    syntax = first_ds.file_meta.get("TransferSyntaxUID")
    scan.file_info = {"transfer_syntax": syntax.name if syntax is not None else "unknown",
                      "private_tag_vrs": vrs, "preprocessing_flags": flags,
                      "projection_geometry": first["TypeofProjectionGeometry"] or "not in file"}
    return scan


def _photons(photons, i: int, stats, n_cols: int, path: Path, first_file: Path) -> None:
    """Row ``i`` of PhotonStatistics: in every file or in none, one finite value >= 0 per channel."""
    if (photons is None) != (stats is None):
        raise InputError(path, tag_label("PhotonStatistics"), f"the tag in every file or in none "
                         f"({'present' if photons is not None else 'absent'} in {first_file.name})",
                         "absent" if stats is None else "present")
    if stats is None:
        return
    stats = np.asarray(stats)
    if stats.size != n_cols:
        raise InputError(path, tag_label("PhotonStatistics"), f"{n_cols} values (one per channel)", stats.size)
    if (stats < 0).any():
        raise InputError(path, tag_label("PhotonStatistics"), "photon counts >= 0", float(stats.min()))
    photons[i] = stats


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-5, atol=1e-6))


def _shift_tags(dphi: np.ndarray, dz: np.ndarray, ffs: str, where: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """(angular rad, axial mm, convention found) from the (7033,100B) and (7033,100C) columns.

    Moen et al. 2021 Table IV, FreeCT and helix2fan: 100B angular (rad), 100C axial (mm); TCIA's
    MATLAB dictionary v8 swaps them. Decided by magnitude (angular ~1e-3 rad, axial ~1 mm) and, where
    only one is non-zero, by FlyingFocalSpotMode (FFSXY shifts the angle only, FFSZ the height only).
    """
    big_b, big_c = np.abs(dphi).max(initial=0), np.abs(dz).max(initial=0)
    standard = "(7033,100B) angular rad, (7033,100C) axial mm (Moen et al. 2021 Table IV, FreeCT)"
    swapped = "(7033,100B) axial mm, (7033,100C) angular rad (swapped, as in TCIA's MATLAB dictionary v8)"
    by_size = big_b > 0.02 and big_c <= 0.02
    by_mode = (ffs == "FFSXY" and big_b == 0 and big_c > 0) or (ffs == "FFSZ" and big_c == 0 and big_b > 0)
    if by_size or by_mode:
        return dz, dphi, swapped + (" - read as such" if by_size else ", decided by FlyingFocalSpotMode")
    if big_b > 0.02:
        raise InputError(where, tag_label("SourceAngularPositionShift"), "a focal-spot shift of < 0.02 rad", big_b)
    if big_b == 0 and big_c == 0:
        return dphi, dz, "no source shifts in the files (all zero or absent)"
    return dphi, dz, standard


def _check_angles(files, order, phi: np.ndarray, n_per_turn: int, folder: Path) -> None:
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


def _scan_kind(first: dict, n_views: int, where: Path) -> tuple[str, str, str]:
    """(scan type, FFS mode, detector shape), refusing what the rebinning does not support."""
    n_per_turn = int(first["NumberofSourceAngularSteps"])
    scan_type = str(first["TypeofProjectionData"] or "HELICAL").upper()
    if n_views < n_per_turn:
        raise InputError(where, tag_label("TypeofProjectionData"), f"at least one full rotation ({n_per_turn} "
                         f"views) for a {scan_type.lower()} scan", f"{n_views} views")
    ffs = str(first["FlyingFocalSpotMode"] or "FFSNONE").upper()
    if ffs not in FFS_PERIOD:
        raise InputError(where, tag_label("FlyingFocalSpotMode"), f"one of {sorted(FFS_PERIOD)}", ffs)
    if n_per_turn % (2 * FFS_PERIOD[ffs]):
        raise InputError(where, tag_label("NumberofSourceAngularSteps"), f"a multiple of {2 * FFS_PERIOD[ffs]} "
                         f"for {ffs}", n_per_turn)
    shape = str(first["DetectorShape"] or "CYLINDRICAL").upper()
    if shape != "CYLINDRICAL":
        raise InputError(where, tag_label("DetectorShape"), "CYLINDRICAL (the rebinning reads a curved detector; "
                         "FLAT and other detector shapes are not supported)", shape)
    return scan_type, ffs, shape


def _assemble(folder: Path, files, first: dict, raw, pv: dict, photons) -> HelicalScan:
    order = np.argsort(pv["instance"], kind="stable")
    pv = {k: v[order] for k, v in pv.items()}
    raw = raw[order]
    photons = None if photons is None else photons[order]
    scan_type, ffs, shape = _scan_kind(first, len(files), files[0])
    dphi, dz, convention = _shift_tags(pv["dphi"], pv["dz"], ffs, folder)
    notes = [f"FFS shift tags: {convention}"] if "swapped" in convention else []
    phi = np.unwrap(pv["phi"])
    n_per_turn = int(first["NumberofSourceAngularSteps"])
    _check_angles(files, order, phi, n_per_turn, folder)
    central = np.asarray(first["DetectorCentralElement"], dtype=float)
    return HelicalScan(raw, pv["slope"].astype(np.float32), pv["intercept"].astype(np.float32), phi, pv["z"],
                       float(first["DetectorFocalCenterRadialDistance"]), float(first["ConstantRadialDistance"]),
                       float(first["DetectorElementTransverseSpacing"]), float(first["DetectorElementAxialSpacing"]),
                       float(central[0]), float(central[1]), dphi, dz, pv["drho"], ffs, n_per_turn, photons,
                       _water_per_mm(float(first["WaterAttenuationCoefficient"]), files[0]), scan_type, shape,
                       str(folder), notes=notes, ffs_shift_tags=convention)

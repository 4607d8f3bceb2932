"""Siemens twix raw data (``meas_*.dat``, VB and VD/VE), read with the ``twixtools`` package.

What is read:

* imaging lines: the measurement data blocks (MDBs) of the last measurement of the file for which
  ``twixtools`` says ``is_image_scan()`` (no noise-adjust, phase-correction, navigator, feedback or
  reference-only lines); their counters ``Lin`` (phase encode), ``Sli`` (slice), ``Ave`` (averages,
  averaged) and the MDH fields ``CenterLin`` and ``CenterCol`` (k = 0 line and sample); ``REFLECT``
  lines are reversed along the readout (when every imaging line is; bipolar readouts are refused);
* noise: MDBs with the ``NOISEADJSCAN`` flag of any measurement in the file (on VD/VE the noise
  adjust scan is usually the first measurement of a multi-RAID file), with the dwell times
  ``sRXSPEC.alDwellTime[0]`` of both measurements for the bandwidth ratio;
* the matrix: ``2 * CenterLin`` phase-encode lines (k = 0 at the centre, as the project needs;
  partial Fourier is refused) and ``samples / flReadoutOSFactor`` readout pixels
  (``Dicom.flReadoutOSFactor``, 2 on Siemens).

Refused, each in one line naming the file, the sequence (``tSequenceFileName``) and the protocol
field (:func:`check_protocol`; the enum values are those of the Siemens protocol, as
``siemens_to_ismrmrd`` maps them): non-Cartesian trajectories (``sKSpace.ucTrajectory`` 2 radial,
4 spiral, 8 BLADE/PROPELLER; 1 is Cartesian), 3-D encoding (``sKSpace.ucDimension`` 4; 2 is 2-D),
EPI (``sFastImaging.lEPIFactor`` > 1), ramp sampling (``alRegridMode`` 2 trapezoidal or 4
sinusoidal regridding; 1 is none), phase-correction navigators (MDBs flagged ``PHASCOR``: a ghost
correction this reader does not apply) and bipolar readouts (imaging lines with and without
``REFLECT``: odd/even echoes need that correction too). Multi-partition, multi-echo, multi-phase,
multi-repetition and multi-set counters are refused as well. What is supported: 2-D Cartesian
single-contrast imaging with monopolar readouts and no phase-correction scans (e.g. GRE, spin echo; a
turbo spin echo only where the sequence acquired no ``PHASCOR`` lines).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from tomoconsensus.errors import InputError
from tomoconsensus.mr.raw import ReadoutLines


def _read(path: Path) -> list[dict]:
    import twixtools

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # twixtools prints the software version
            return twixtools.read_twix(str(path), verbose=False, parse_pmu=False, parse_geometry=False)
    except Exception as exc:  # noqa: BLE001 - twixtools raises bare exceptions on foreign files
        raise InputError(path, "file", "a readable Siemens twix .dat file", str(exc).split("\n")[0] or
                         type(exc).__name__) from None


#: What the twix reader supports, for the refusals' messages.
SUPPORTED = "2-D Cartesian single-contrast imaging with monopolar readouts (e.g. GRE, spin echo)"

#: Siemens protocol enums (SEQ::Trajectory, SEQ::Dimension, SEQ::RegridMode).
_TRAJECTORIES = {1: "Cartesian", 2: "radial", 4: "spiral", 8: "BLADE/PROPELLER"}
_DIMENSIONS = {1: "1-D", 2: "2-D", 4: "3-D"}
_REGRID = {1: "none", 2: "trapezoidal", 4: "sinusoidal"}


def sequence_name(hdr: dict) -> str:
    """The sequence file of the protocol (``MeasYaps.tSequenceFileName`` without its folder), or ``unknown``."""
    name = hdr.get("MeasYaps", {}).get("tSequenceFileName") or hdr.get("Meas", {}).get("tSequenceFileName")
    return str(name).replace("\\", "/").rsplit("/", 1)[-1] if name else "unknown"


def _refuse(path: Path, hdr: dict, field: str, what: str, value) -> None:
    raise InputError(path, field, f"{SUPPORTED}; this file is {what}",
                     f"{value} (sequence {sequence_name(hdr)})")


def _int(value, default: int) -> int:
    """A protocol integer (twixtools gives ints, hex fields stay strings such as ``'0x4'``); ``default`` if absent."""
    if value is None or value == "":
        return default
    try:
        return int(value, 0) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        return default


def check_protocol(hdr: dict, path: Path) -> None:
    """Refuse sequences the reader does not handle, from the measurement's protocol (module docstring).

    ``hdr`` is twixtools' parsed header of the imaging measurement (``MeasYaps``: the ASCCONV
    protocol; ``Meas``: the XProtocol one). A field that is absent is not checked.
    """
    yaps, meas = hdr.get("MeasYaps", {}), hdr.get("Meas", {})
    kspace = yaps.get("sKSpace", {})
    trajectory = _int(kspace.get("ucTrajectory"), 1)
    if trajectory != 1:
        _refuse(path, hdr, "sKSpace.ucTrajectory", f"{_TRAJECTORIES.get(trajectory, 'non-Cartesian')} "
                "(non-Cartesian k-space needs gridding, which is not implemented)", trajectory)
    dimension = _int(kspace.get("ucDimension"), 2)
    if dimension != 2:
        _refuse(path, hdr, "sKSpace.ucDimension", f"{_DIMENSIONS.get(dimension, 'not 2-D')} encoded "
                f"({kspace.get('lPartitions', '?')} partitions)", dimension)
    epi = _int(yaps.get("sFastImaging", {}).get("lEPIFactor"), 1)
    if epi > 1:
        _refuse(path, hdr, "sFastImaging.lEPIFactor", "EPI (echo-planar readout trains need ramp-sampling "
                "regridding and ghost correction)", epi)
    regrid = meas.get("alRegridMode", [1])
    modes = sorted({m for m in (_int(v, 1) for v in np.atleast_1d(regrid)) if m not in (0, 1)})
    if modes:
        _refuse(path, hdr, "alRegridMode", f"ramp sampled ({_REGRID.get(modes[0], modes[0])} regridding is not "
                "implemented)", modes)


def _check_readouts(mdbs: list, hdr: dict, path: Path) -> None:
    """Refuse phase-correction navigators and bipolar imaging readouts (module docstring)."""
    phase_correction = sum(1 for m in mdbs if m.is_flag_set("PHASCOR"))
    if phase_correction:
        _refuse(path, hdr, "MDH flag PHASCOR", "acquired with phase-correction navigators (EPI-style ghost "
                "correction, which this reader does not apply)", f"{phase_correction} PHASCOR lines")
    reflected = [m.is_flag_set("REFLECT") for m in mdbs if m.is_image_scan()]
    if any(reflected) and not all(reflected):
        _refuse(path, hdr, "MDH flag REFLECT", "a bipolar readout (odd and even lines in opposite directions "
                "need a phase correction)", f"{sum(reflected)} of {len(reflected)} imaging lines reflected")


def _dwell_ns(measurement: dict) -> float:
    try:
        return float(measurement["hdr"]["MeasYaps"]["sRXSPEC"]["alDwellTime"][0])
    except (KeyError, IndexError, TypeError):
        return 0.0


def _image_lines(mdbs: list, path: Path) -> dict[str, list]:
    out: dict[str, list] = {k: [] for k in ("data", "slices", "lines")}
    for mdb in mdbs:
        if not mdb.is_image_scan():
            continue
        others = {"Par": mdb.cPar, "Eco": mdb.cEco, "Phs": mdb.cPhs, "Rep": mdb.cRep, "Set": mdb.cSet}
        if any(others.values()):
            raise InputError(path, "MDH counters", "2-D data with one partition, echo, phase, repetition and set",
                             {k: v for k, v in others.items() if v})
        data = np.asarray(mdb.data)
        out["data"].append(data[:, ::-1] if mdb.is_flag_set("REFLECT") else data)
        out["slices"].append(mdb.cSlc)
        out["lines"].append(mdb.cLin)
    return out


def read_twix_lines(path: str | Path) -> ReadoutLines:
    """The imaging lines and noise samples of a twix file (module docstring)."""
    path = Path(path)
    measurements = _read(path)
    image = measurements[-1]
    check_protocol(image["hdr"], path)
    _check_readouts(image["mdb"], image["hdr"], path)
    got = _image_lines(image["mdb"], path)
    if not got["data"]:
        raise InputError(path, "MDBs", "imaging scans in the last measurement", "none")
    first = next(m for m in image["mdb"] if m.is_image_scan())
    if first.mdh.CutOff.Pre or first.mdh.CutOff.Post:
        raise InputError(path, "CutOff", "no cut-off samples (asymmetric echo is not supported)",
                         (first.mdh.CutOff.Pre, first.mdh.CutOff.Post))
    shapes = sorted({d.shape for d in got["data"]})
    if len(shapes) > 1:
        raise InputError(path, "MDBs", "the same channels and samples in every imaging line", shapes)
    samples = shapes[0][1]
    os_factor = float(image["hdr"].get("Dicom", {}).get("flReadoutOSFactor", 2.0) or 2.0)
    noise_blocks = [(np.asarray(m.data), _dwell_ns(meas)) for meas in measurements for m in meas["mdb"]
                    if m.is_flag_set("NOISEADJSCAN")]
    channels = sorted({b.shape[0] for b, _ in noise_blocks})
    if len(channels) > 1:
        raise InputError(path, "NOISEADJSCAN MDBs", "the same channels in every noise-adjust line", channels)
    noise = np.concatenate([b for b, _ in noise_blocks], axis=1) if noise_blocks else None
    dwell, noise_dwell = _dwell_ns(image), (noise_blocks[0][1] if noise_blocks else 0.0)
    ratio = noise_dwell / dwell if dwell > 0 and noise_dwell > 0 else 1.0
    return ReadoutLines(np.stack(got["data"]).astype(np.complex64), np.asarray(got["slices"]),
                        np.asarray(got["lines"]), 2 * int(first.mdh.CenterLin), int(first.mdh.CenterLin),
                        int(first.mdh.CenterCol), int(round(samples / os_factor)), noise, ratio,
                        {"format": "Siemens twix", "noise_samples": 0 if noise is None else int(noise.shape[1])},
                        {"lines": "MDH CenterLin", "noise": "NOISEADJSCAN data", "data": "imaging MDB data"})

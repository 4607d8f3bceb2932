"""Siemens twix raw data (``meas_*.dat``, VB and VD/VE), read with the ``twixtools`` package.

What is read:

* imaging lines: the measurement data blocks (MDBs) of the last measurement of the file for which
  ``twixtools`` says ``is_image_scan()`` (no noise-adjust, phase-correction, navigator, feedback or
  reference-only lines); their counters ``Lin`` (phase encode), ``Sli`` (slice), ``Ave`` (averages,
  averaged) and the MDH fields ``CenterLin`` and ``CenterCol`` (k = 0 line and sample); ``REFLECT``
  lines are reversed along the readout;
* noise: MDBs with the ``NOISEADJSCAN`` flag of any measurement in the file (on VD/VE the noise
  adjust scan is usually the first measurement of a multi-RAID file), with the dwell times
  ``sRXSPEC.alDwellTime[0]`` of both measurements for the bandwidth ratio;
* the matrix: ``2 * CenterLin`` phase-encode lines (k = 0 at the centre, as the project needs;
  partial Fourier is refused) and ``samples / flReadoutOSFactor`` readout pixels
  (``Dicom.flReadoutOSFactor``, 2 on Siemens).

Multi-partition (3-D), multi-echo, multi-phase, multi-repetition and multi-set data are refused.
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
    noise = np.concatenate([b for b, _ in noise_blocks], axis=1) if noise_blocks else None
    dwell, noise_dwell = _dwell_ns(image), (noise_blocks[0][1] if noise_blocks else 0.0)
    ratio = noise_dwell / dwell if dwell > 0 and noise_dwell > 0 else 1.0
    return ReadoutLines(np.stack(got["data"]).astype(np.complex64), np.asarray(got["slices"]),
                        np.asarray(got["lines"]), 2 * int(first.mdh.CenterLin), int(first.mdh.CenterLin),
                        int(first.mdh.CenterCol), int(round(samples / os_factor)), noise, ratio,
                        {"format": "Siemens twix", "noise_samples": 0 if noise is None else int(noise.shape[1])})

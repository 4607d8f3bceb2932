"""ISMRMRD (MRD) HDF5 raw data: 2-D Cartesian multi-coil acquisitions, read with the ``ismrmrd`` package.

What is read (Inati et al., MRM 2017; the XML header's first ``encoding``):

* ``encodedSpace.matrixSize.y``: phase-encode lines of the encoded matrix; the k = 0 line is
  ``encodingLimits.kspace_encoding_step_1.center`` (its ``maximum + 1`` if no matrix y is given);
* ``reconSpace.matrixSize.x``: readout pixels after oversampling removal (``encodedSpace.x`` / 2
  on most scanners);
* per acquisition: ``idx.kspace_encode_step_1`` (line), ``idx.slice``, ``center_sample``,
  ``sample_time_us`` (dwell time) and the flags. Noise scans (``ACQ_IS_NOISE_MEASUREMENT``) give
  the pre-whitening; navigator, phase-correction, dummy, feedback and calibration-only lines
  (``ACQ_IS_PARALLEL_CALIBRATION`` without ``..._AND_IMAGING``) are skipped; ``ACQ_IS_REVERSE``
  lines are reversed along the readout. ``discard_pre`` / ``discard_post`` samples are removed.

Only 2-D data (one ``kspace_encode_step_2``) with a single contrast, phase, repetition and set is
accepted; what the reader does is recorded in the prepared file (``tomoconsensus.mr.raw``).
Refused, each in one line naming the file, the sequence (``measurementInformation.sequenceName``)
and the field: an ``encoding.trajectory`` other than ``cartesian`` (``epi``, ``radial``,
``goldenangle``, ``spiral``, ``other``), acquisitions that carry k-space trajectory coordinates
(``trajectory_dimensions`` > 0), 3-D encoding (``encodedSpace.matrixSize.z`` > 1 or
``kspace_encoding_step_2`` used), phase-correction lines (``ACQ_IS_PHASECORR_DATA``: EPI ghost
correction, not applied here), bipolar readouts (imaging lines with and without ``ACQ_IS_REVERSE``),
noise scans of different coil counts, and (in :mod:`tomoconsensus.mr.raw`) non-finite samples and a
matrix that does not fit in memory.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from tomoconsensus.errors import InputError
from tomoconsensus.mr.raw import ReadoutLines

#: What the ISMRMRD reader supports, for the refusals' messages.
SUPPORTED = "2-D Cartesian single-contrast imaging with monopolar readouts"

#: ISMRMRD flags of lines that carry no imaging data for this reconstruction.
_SKIPPED_FLAGS = ("ACQ_IS_NAVIGATION_DATA", "ACQ_IS_DUMMYSCAN_DATA",
                  "ACQ_IS_HPFEEDBACK_DATA", "ACQ_IS_RTFEEDBACK_DATA", "ACQ_IS_PARALLEL_CALIBRATION",
                  "ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA", "ACQ_IS_PHASE_STABILIZATION_REFERENCE",
                  "ACQ_IS_PHASE_STABILIZATION")


def is_ismrmrd(path: Path) -> bool:
    """True for an HDF5 file with an ISMRMRD ``dataset`` group holding ``data`` and ``xml``."""
    try:
        with h5py.File(path, "r") as f:
            group = f.get("dataset")
            return isinstance(group, h5py.Group) and "data" in group and "xml" in group
    except (OSError, ValueError):
        return False


def _header(dset, path: Path):
    import ismrmrd.xsd

    try:
        header = ismrmrd.xsd.CreateFromDocument(dset.read_xml_header())
    except Exception as exc:  # noqa: BLE001 - xsdata raises several parser types
        raise InputError(path, "dataset/xml", "a valid ISMRMRD XML header", str(exc).split("\n")[0]) from None
    if not header.encoding:
        raise InputError(path, "dataset/xml", "an <encoding> section", "none")
    return header


def sequence_name(header) -> str:
    """``measurementInformation.sequenceName`` (else ``sequenceParameters.sequence_type``), or ``unknown``."""
    info, params = header.measurementInformation, header.sequenceParameters
    name = (info.sequenceName if info is not None else None) or (params.sequence_type if params is not None
                                                                  else None)
    return str(name) if name else "unknown"


def _refuse(path: Path, sequence: str, field: str, what: str, value) -> None:
    raise InputError(path, field, f"{SUPPORTED}; this file is {what}", f"{value} (sequence {sequence})")


def _matrix(encoding, path: Path, sequence: str) -> tuple[int, int, int, str]:
    """(phase-encode lines, centre line, readout pixels, the field giving the lines) from the header."""
    trajectory = getattr(encoding.trajectory, "value", encoding.trajectory)
    if trajectory != "cartesian":
        _refuse(path, sequence, "encoding.trajectory", f"{trajectory} (only Cartesian lines are placed on the "
                "grid; EPI, radial and spiral data need regridding)", trajectory)
    step2 = encoding.encodingLimits.kspace_encoding_step_2
    if encoding.encodedSpace.matrixSize.z > 1 or (step2 is not None and step2.maximum > 0):
        _refuse(path, sequence, "encodedSpace.matrixSize.z", "3-D encoded (kspace_encoding_step_2 up to "
                f"{step2.maximum if step2 is not None else 0})", encoding.encodedSpace.matrixSize.z)
    limits = encoding.encodingLimits.kspace_encoding_step_1
    n_lines, field = int(encoding.encodedSpace.matrixSize.y or 0), "encodedSpace.matrixSize.y"
    if limits is None and n_lines < 1:
        raise InputError(path, field, "the number of phase-encode lines", n_lines)
    if n_lines < 1:
        n_lines, field = int(limits.maximum) + 1, "encodingLimits.kspace_encoding_step_1.maximum"
    centre = int(limits.center) if limits is not None else n_lines // 2
    return n_lines, centre, int(encoding.reconSpace.matrixSize.x), field


def _lines(dset, path: Path, sequence: str) -> dict[str, list]:
    """Imaging lines (``data``, ``slices``, ``lines``, ``centres``, ``dwell``, ``reversed``) and ``noise`` /
    ``noise_dwell``; refuses phase-correction lines and trajectory coordinates (module docstring)."""
    import ismrmrd

    skipped = [getattr(ismrmrd, name) for name in _SKIPPED_FLAGS]
    out: dict[str, list] = {k: [] for k in ("data", "slices", "lines", "centres", "dwell", "reversed", "noise",
                                            "noise_dwell")}
    for i in range(dset.number_of_acquisitions()):
        acq = dset.read_acquisition(i)
        samples = acq.data[:, acq.discard_pre:acq.number_of_samples - acq.discard_post]
        if acq.isFlagSet(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            out["noise"].append(acq.data)
            out["noise_dwell"].append(acq.sample_time_us)
            continue
        if acq.isFlagSet(ismrmrd.ACQ_IS_PHASECORR_DATA):
            _refuse(path, sequence, f"acquisition {i} flag ACQ_IS_PHASECORR_DATA", "acquired with "
                    "phase-correction lines (EPI-style ghost correction, which this reader does not apply)", "set")
        if acq.trajectory_dimensions > 0:
            _refuse(path, sequence, f"acquisition {i} trajectory_dimensions", "non-Cartesian (its samples carry "
                    "k-space coordinates)", acq.trajectory_dimensions)
        imaging_too = acq.isFlagSet(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
        if any(acq.isFlagSet(f) for f in skipped) and not imaging_too:
            continue
        out["reversed"].append(acq.isFlagSet(ismrmrd.ACQ_IS_REVERSE))
        idx = acq.idx
        if idx.kspace_encode_step_2 or idx.contrast or idx.phase or idx.repetition or idx.set:
            raise InputError(path, f"acquisition {i} idx", "2-D data with one contrast, phase, repetition and set",
                             f"step_2 {idx.kspace_encode_step_2}, contrast {idx.contrast}, phase {idx.phase}, "
                             f"repetition {idx.repetition}, set {idx.set}")
        out["data"].append(samples[:, ::-1] if acq.isFlagSet(ismrmrd.ACQ_IS_REVERSE) else samples)
        out["slices"].append(idx.slice)
        out["lines"].append(idx.kspace_encode_step_1)
        out["centres"].append(acq.center_sample - acq.discard_pre)
        out["dwell"].append(acq.sample_time_us)
    return out


def read_ismrmrd_lines(path: str | Path) -> ReadoutLines:
    """The imaging lines and noise samples of an ISMRMRD file (module docstring)."""
    import ismrmrd

    path = Path(path)
    try:
        dset = ismrmrd.Dataset(str(path), "dataset", mode="r")
    except (OSError, ValueError) as exc:
        raise InputError(path, "file", "a readable ISMRMRD HDF5 file", str(exc)) from None
    with dset:
        header = _header(dset, path)
        sequence = sequence_name(header)
        n_lines, centre, n_readout, lines_field = _matrix(header.encoding[0], path, sequence)
        got = _lines(dset, path, sequence)
    if not got["data"]:
        raise InputError(path, "dataset/data", "imaging acquisitions (lines without the noise flag)", "none")
    if any(got["reversed"]) and not all(got["reversed"]):
        _refuse(path, sequence, "flag ACQ_IS_REVERSE", "a bipolar readout (odd and even lines in opposite "
                "directions need a phase correction)", f"{sum(got['reversed'])} of {len(got['reversed'])} "
                "imaging lines reversed")
    noise_coils = sorted({n.shape[0] for n in got["noise"]})
    if len(noise_coils) > 1:
        raise InputError(path, "noise acquisitions (ACQ_IS_NOISE_MEASUREMENT)", "the same coils in every noise "
                         "scan", f"coil counts {noise_coils}")
    shapes = sorted({d.shape for d in got["data"]})
    if len(shapes) > 1 or len(set(got["centres"])) > 1:
        raise InputError(path, "dataset/data", "the same coils, samples and centre sample in every imaging line",
                         f"shapes {shapes}, centre samples {sorted(set(got['centres']))}")
    noise, dwell, noise_dwell = got["noise"], got["dwell"], got["noise_dwell"]
    ratio = float(np.mean(noise_dwell) / np.mean(dwell)) if noise and min(dwell) > 0 and min(noise_dwell) > 0 else 1.0
    return ReadoutLines(np.stack(got["data"]).astype(np.complex64), np.asarray(got["slices"]),
                        np.asarray(got["lines"]), n_lines, centre, got["centres"][0], n_readout,
                        np.concatenate(noise, axis=1) if noise else None, ratio,
                        {"format": "ISMRMRD", "noise_samples": int(sum(n.shape[1] for n in noise))},
                        {"lines": lines_field, "noise": "noise acquisitions (ACQ_IS_NOISE_MEASUREMENT)",
                         "data": "dataset/data (imaging acquisitions)"})

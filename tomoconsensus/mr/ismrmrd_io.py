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
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from tomoconsensus.errors import InputError
from tomoconsensus.mr.raw import ReadoutLines

#: ISMRMRD flags of lines that carry no imaging data for this reconstruction.
_SKIPPED_FLAGS = ("ACQ_IS_NAVIGATION_DATA", "ACQ_IS_PHASECORR_DATA", "ACQ_IS_DUMMYSCAN_DATA",
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


def _encoding(dset, path: Path):
    import ismrmrd.xsd

    try:
        header = ismrmrd.xsd.CreateFromDocument(dset.read_xml_header())
    except Exception as exc:  # noqa: BLE001 - xsdata raises several parser types
        raise InputError(path, "dataset/xml", "a valid ISMRMRD XML header", str(exc).split("\n")[0]) from None
    if not header.encoding:
        raise InputError(path, "dataset/xml", "an <encoding> section", "none")
    return header.encoding[0]


def _matrix(encoding, path: Path) -> tuple[int, int, int]:
    """(phase-encode lines, centre line, readout pixels) from the header."""
    limits = encoding.encodingLimits.kspace_encoding_step_1
    n_lines = int(encoding.encodedSpace.matrixSize.y or 0)
    if limits is None and n_lines < 1:
        raise InputError(path, "encodedSpace.matrixSize.y", "the number of phase-encode lines", n_lines)
    n_lines = n_lines if n_lines > 0 else int(limits.maximum) + 1
    centre = int(limits.center) if limits is not None else n_lines // 2
    n_readout = int(encoding.reconSpace.matrixSize.x)
    step2 = encoding.encodingLimits.kspace_encoding_step_2
    if encoding.encodedSpace.matrixSize.z > 1 or (step2 is not None and step2.maximum > 0):
        raise InputError(path, "encodedSpace.matrixSize.z", "2-D data (one partition); 3-D encoding is not "
                         "supported", encoding.encodedSpace.matrixSize.z)
    return n_lines, centre, n_readout


def _lines(dset, path: Path) -> dict[str, list]:
    """Imaging lines (``data``, ``slices``, ``lines``, ``centres``, ``dwell``) and ``noise`` / ``noise_dwell``."""
    import ismrmrd

    skipped = [getattr(ismrmrd, name) for name in _SKIPPED_FLAGS]
    out: dict[str, list] = {k: [] for k in ("data", "slices", "lines", "centres", "dwell", "noise", "noise_dwell")}
    for i in range(dset.number_of_acquisitions()):
        acq = dset.read_acquisition(i)
        samples = acq.data[:, acq.discard_pre:acq.number_of_samples - acq.discard_post]
        if acq.isFlagSet(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            out["noise"].append(acq.data)
            out["noise_dwell"].append(acq.sample_time_us)
            continue
        imaging_too = acq.isFlagSet(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
        if any(acq.isFlagSet(f) for f in skipped) and not imaging_too:
            continue
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
        n_lines, centre, n_readout = _matrix(_encoding(dset, path), path)
        got = _lines(dset, path)
    if not got["data"]:
        raise InputError(path, "dataset/data", "imaging acquisitions (lines without the noise flag)", "none")
    shapes = sorted({d.shape for d in got["data"]})
    if len(shapes) > 1 or len(set(got["centres"])) > 1:
        raise InputError(path, "dataset/data", "the same coils, samples and centre sample in every imaging line",
                         f"shapes {shapes}, centre samples {sorted(set(got['centres']))}")
    noise, dwell, noise_dwell = got["noise"], got["dwell"], got["noise_dwell"]
    ratio = float(np.mean(noise_dwell) / np.mean(dwell)) if noise and min(dwell) > 0 and min(noise_dwell) > 0 else 1.0
    return ReadoutLines(np.stack(got["data"]).astype(np.complex64), np.asarray(got["slices"]),
                        np.asarray(got["lines"]), n_lines, centre, got["centres"][0], n_readout,
                        np.concatenate(noise, axis=1) if noise else None, ratio,
                        {"format": "ISMRMRD", "noise_samples": int(sum(n.shape[1] for n in noise))})

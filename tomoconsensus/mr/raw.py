"""Scanner raw data to the project's k-space: what ISMRMRD and Siemens twix readers share.

A Cartesian 2-D acquisition arrives as *readout lines*: one ``(coils, samples)`` array per acquired
phase-encode line and slice, with the readout usually oversampled (2x on Siemens) and, where the
scanner recorded one, a *noise scan* (lines acquired with no RF). :func:`assemble_lines` turns
them into the layout every reader returns (``tomoconsensus.mr.io``), in this order:

1. **Noise pre-whitening.** From the noise samples ``n`` (coils, N) the coil noise covariance is
   ``Psi = n n^H / N``, rescaled to the imaging readout's bandwidth by the dwell-time ratio
   ``t_noise / t_image`` (thermal noise variance is proportional to the receiver bandwidth,
   i.e. to 1 / dwell time). With its Cholesky factor ``Psi = L L^H``, every line becomes ``L^-1 d``:
   coils with independent noise of unit variance per complex sample of the oversampled readout
   (``n_out / samples`` after step 2, e.g. 1/2 for Siemens' 2x). Without a noise scan the data
   are left as they are (say so in the prepared file: ``prewhitened = False``).
2. **Readout oversampling removal**: the central ``n_out`` of the readout samples' image
   (inverse FFT along the readout, keep the centre, FFT back), so k-space covers the prescribed
   field of view only.
3. **Placement**: line ``l`` goes to row ``l - centre_line + n_lines // 2`` so that k = 0 sits at
   ``n_lines // 2`` (the project's convention, as ``sigpy.fft``). Repeated lines (averages) are
   averaged. Lines never acquired stay zero, and ``acquired`` (slices, n_lines) says which are not.

All steps are linear in the data, so the zero-mean, independent noise that the split needs is kept.

Before any of this, :func:`assemble_lines` refuses non-finite samples (imaging lines or noise scan)
and a k-space that would not fit in memory: the assembly holds ``slices x coils x n_lines x
n_readout`` complex128 sums and their complex64 result (24 bytes per sample, :func:`kspace_bytes`),
which must stay below the memory available (:func:`tomoconsensus.hostmem.available_host_bytes`).
A header that claims 1e8 phase-encode lines is refused in one line this way,
naming its field, instead of failing in the allocation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from tomoconsensus.errors import InputError, require_finite
from tomoconsensus.hostmem import available_host_bytes

#: Bytes per k-space sample while assembling: complex128 sums and the complex64 result.
ASSEMBLY_BYTES_PER_SAMPLE = 24


@dataclass
class ReadoutLines:
    """Acquired readout lines of one file, before assembly.

    Attributes
    ----------
    data : (n_acq, coils, samples) complex64, one row per acquired line (oversampled readout)
    slice_index, line_index : (n_acq,) int, slice and phase-encode counters of each line
    n_lines : int, phase-encode lines of the prescribed (encoded) matrix
    centre_line : int, the counter value of the k = 0 line
    centre_sample : int, the sample index of k = 0 in each readout (``samples // 2`` expected)
    n_readout : int, readout samples after oversampling removal (the recon matrix's x size)
    noise : (coils, N) complex or None, samples of the noise scan
    dwell_ratio : float, noise-scan dwell time / imaging dwell time (1 if unknown)
    notes : dict, what the reader did (recorded in the prepared file)
    fields : dict, the file's names of ``lines`` (what sets ``n_lines``), ``noise`` and ``data``, for messages
    """

    data: np.ndarray
    slice_index: np.ndarray
    line_index: np.ndarray
    n_lines: int
    centre_line: int
    centre_sample: int
    n_readout: int
    noise: np.ndarray | None = None
    dwell_ratio: float = 1.0
    notes: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)


available_memory_bytes = available_host_bytes  # module name kept: tests patch it here


def kspace_bytes(raw: ReadoutLines) -> int:
    """Bytes :func:`assemble_lines` allocates: slices x coils x n_lines x n_readout x 24 (Python ints)."""
    slices = len(np.unique(raw.slice_index))
    return slices * int(raw.data.shape[1]) * int(raw.n_lines) * int(raw.n_readout) * ASSEMBLY_BYTES_PER_SAMPLE


def whitening_matrix(noise: np.ndarray, dwell_ratio: float = 1.0, source=None) -> np.ndarray:
    """``L^-1`` with ``L L^H = Psi * dwell_ratio``, ``Psi = noise noise^H / N`` (coils x coils).

    Parameters
    ----------
    noise : (coils, N) complex, noise-scan samples (N >= coils)
    dwell_ratio : float, t_noise / t_image; the imaging noise variance is ``Psi * t_noise / t_image``

    Returns
    -------
    (coils, coils) complex128, lower triangular
    """
    coils, n = noise.shape
    if n < coils:
        raise InputError(source, "noise scan", f"at least as many samples as coils ({coils})", n)
    psi = noise.astype(np.complex128) @ noise.conj().T.astype(np.complex128) / n * dwell_ratio
    try:
        chol = np.linalg.cholesky(psi)
    except np.linalg.LinAlgError:
        raise InputError(source, "noise scan", "a positive definite coil noise covariance (every coil "
                         "with its own noise)", "singular covariance") from None
    return scipy.linalg.solve_triangular(chol, np.eye(coils), lower=True)


def remove_readout_oversampling(lines: np.ndarray, n_out: int) -> np.ndarray:
    """Keep the central ``n_out`` pixels of the readout's image (last axis), back in k-space.

    ``lines`` (..., samples) with k = 0 at ``samples // 2``; the result (..., n_out) has k = 0 at
    ``n_out // 2``. A k-space sample's value is unchanged when the cropped part of the image is
    empty (the kept samples are those of the coarser grid); white noise of variance s^2 per sample
    keeps only the band of the kept field of view: variance ``s^2 n_out / samples`` afterwards.
    """
    n_in = lines.shape[-1]
    if n_out == n_in:
        return lines
    axes = (-1,)
    image = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(lines, axes=axes), axis=-1), axes=axes)
    start = n_in // 2 - n_out // 2
    image = image[..., start:start + n_out]
    kspace = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(image, axes=axes), axis=-1), axes=axes)
    return kspace.astype(np.complex64)


def _check_values(raw: ReadoutLines, source) -> None:
    """Finite samples and noise of matching coils; a k-space that fits in memory (module docstring)."""
    names = {"lines": "phase-encode lines", "noise": "noise scan", "data": "imaging lines", **raw.fields}
    require_finite(raw.data, source, names["data"])
    if raw.noise is not None:
        if raw.noise.shape[0] != raw.data.shape[1]:
            raise InputError(source, names["noise"], f"the {raw.data.shape[1]} coils of the imaging lines",
                             raw.noise.shape[0])
        require_finite(raw.noise, source, names["noise"])
    need, have = kspace_bytes(raw), available_memory_bytes()
    if need > have:
        raise InputError(source, names["lines"], f"a k-space that fits in memory: {len(np.unique(raw.slice_index))} "
                         f"slices x {raw.data.shape[1]} coils x {raw.n_lines} lines x {raw.n_readout} readout "
                         f"samples needs {need / 2 ** 30:.3g} GiB, {have / 2 ** 30:.3g} GiB available", raw.n_lines)


def _check(raw: ReadoutLines, source) -> None:
    samples = raw.data.shape[-1]
    if raw.centre_sample != samples // 2:
        raise InputError(source, "centre sample", f"k = 0 at sample {samples // 2} of {samples} (a symmetric "
                         "echo; asymmetric echoes / partial Fourier readouts are not supported)", raw.centre_sample)
    if not 0 < raw.n_readout <= samples:
        raise InputError(source, "recon matrix x", f"between 1 and the {samples} readout samples", raw.n_readout)
    rows = raw.line_index - raw.centre_line + raw.n_lines // 2
    if rows.min() < 0 or rows.max() >= raw.n_lines:
        raise InputError(source, "phase-encode counters", f"lines within the {raw.n_lines}-line encoded matrix "
                         f"centred on line {raw.centre_line}", f"{raw.line_index.min()}..{raw.line_index.max()}")
    _check_values(raw, source)


def assemble_lines(raw: ReadoutLines, source=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Pre-whiten, remove readout oversampling and place the lines (module docstring).

    Returns
    -------
    kspace : (slices, coils, n_lines, n_readout) complex64, zero where not acquired
    acquired : (slices, n_lines) bool
    notes : dict of what was done (``prewhitened``, ``readout_oversampling``, ``averaged_lines``)
    """
    if raw.data.size == 0:
        raise InputError(source, "acquisitions", "at least one imaging readout line", "none")
    _check(raw, source)
    data = raw.data
    if raw.noise is not None:
        data = whitening_matrix(raw.noise, raw.dwell_ratio, source) @ data  # (coils, coils) @ (n, coils, s)
    data = remove_readout_oversampling(data, raw.n_readout)
    slices = np.unique(raw.slice_index)
    rows = raw.line_index - raw.centre_line + raw.n_lines // 2
    slot = np.searchsorted(slices, raw.slice_index)
    shape = (len(slices), data.shape[1], raw.n_lines, raw.n_readout)
    kspace = np.zeros(shape, np.complex128)
    counts = np.zeros((len(slices), raw.n_lines), int)
    np.add.at(kspace, (slot, slice(None), rows), data)
    np.add.at(counts, (slot, rows), 1)
    kspace /= np.maximum(counts, 1)[:, None, :, None]
    notes = {"prewhitened": raw.noise is not None, "readout_oversampling": raw.data.shape[-1] / raw.n_readout,
              "averaged_lines": int((counts > 1).sum()), **raw.notes}
    return kspace.astype(np.complex64), counts > 0, notes

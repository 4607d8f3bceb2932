"""The MR forward operator ``A = M F S`` as a :class:`~tomoconsensus.tomo.linop.Linop` (a thin adaptor of SigPy's).

For an image ``x`` (y, x), coil sensitivities ``S`` (coils, y, x) and the acquired phase-encode lines
``M`` (ky,), ``A x = M F (S x)``: each coil image ``S_c x`` is Fourier transformed (centred, orthonormal,
as everywhere in :mod:`tomoconsensus.mr`) and the k-space kept on the acquired lines, zero elsewhere;
``A^H y = sum_c conj(S_c) F^H (M y_c)``. This is the operator of data consistency
(:func:`tomoconsensus.mr.consistency.data_consistency`: SigPy's ``Sense`` with the line mask as weights).
"""

from __future__ import annotations

import numpy as np

from tomoconsensus.tomo.linop import Linop


class MRForward(Linop):
    """``A = M F S`` on one slice: image (y, x) -> k-space (coils, ky, kx), complex.

    Parameters
    ----------
    maps : ndarray, (coils, y, x) complex
        Coil sensitivities.
    lines : ndarray, (ky,) bool
        Acquired phase-encode lines (``M``).
    dtype : complex64 or complex128
        What the operator computes in and returns.
    device : int
        SigPy device: -1 the CPU, ``n`` GPU ``n`` (needs CuPy; :func:`tomoconsensus.mr.recon.sigpy_device`).
    """

    native = "numpy"

    def __init__(self, maps: np.ndarray, lines: np.ndarray, dtype=np.complex64, device: int = -1):
        import sigpy as sp
        import sigpy.mri

        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "c":
            raise ValueError(f"dtype: expected complex64 or complex128, got {self.dtype}")
        maps = np.asarray(maps, self.dtype)
        self.ishape, self.oshape = tuple(maps.shape[1:]), tuple(maps.shape)
        self.device = "cpu" if device < 0 else f"cuda:{device}"
        self._dev = sp.Device(device)
        weights = np.broadcast_to(np.asarray(lines, bool)[:, None], maps.shape[1:]).astype(self.dtype.char.lower())
        with self._dev:
            self._op = sigpy.mri.linop.Sense(sp.to_device(maps, self._dev), weights=sp.to_device(weights, self._dev))

    def _run(self, op, x: np.ndarray) -> np.ndarray:
        import sigpy as sp

        with self._dev:
            return sp.to_device(op(sp.to_device(np.asarray(x, self.dtype), self._dev)), -1)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return self._run(self._op, x)

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        return self._run(self._op.H, y)

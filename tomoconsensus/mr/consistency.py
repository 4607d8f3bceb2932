"""Data consistency at inference: pull a network's image back onto the acquired k-space lines.

The paper's discussion (sec. 5) suggests enforcing consistency with the measured data instead of
(or after) the image-domain consensus. For a network output z (complex image), the acquired
multi-coil k-space y on the lines ``M`` and the coil maps S,

    x_dc = argmin_x ||M F S x - y||^2 + lam ||x - z||^2,

solved by conjugate gradients on the normal equations (S^H F^H M F S + lam I) x = S^H F^H M y + lam z
(SigPy ``LinearLeastSquares`` with prior mean ``z``). lam -> inf returns z; lam -> 0 fits the data
(SENSE without regularisation where the data determine x, z elsewhere).

``lam`` is chosen without a reference by :func:`heldout_error`: the solution from the lines of one
half (and the network's output from that half only) predicts the other half's outer lines, which it
did not see; their noise is independent, so the expected prediction error is the k-space error of the
solution on unseen lines plus a constant (the noise).

Conventions as in :mod:`tomoconsensus.mr.recon`: k-space (coils, ky, kx), k = 0 at (ky // 2, kx // 2),
lines along ky, centred orthonormal FFT; images (y, x) complex in the units of the k-space.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sigpy as sp
import sigpy.mri

from tomoconsensus.errors import InputError


def from_channels(image: np.ndarray, scale: float) -> np.ndarray:
    """(2, y, x) real/imaginary channels multiplied by ``scale`` -> (y, x) complex in k-space units.

    The inverse of :func:`tomoconsensus.mr.recon.to_channels`.
    """
    return ((image[0] + 1j * image[1]) / scale).astype(np.complex64)


def data_consistency(kspace: np.ndarray, maps: np.ndarray, lines: np.ndarray, prior: np.ndarray, lamda: float,
                     max_iter: int = 300, tol: float = 1e-5, device: int = -1) -> np.ndarray:
    """The image closest to ``prior`` that agrees with the acquired lines (L2 trade-off ``lamda``).

    Parameters
    ----------
    kspace : (coils, ky, kx) complex
        Acquired k-space; only the lines where ``lines`` is True are used.
    maps : (coils, y, x) complex
        Coil sensitivities (e.g. ESPIRiT), the same that define the image's phase and scale.
    lines : (ky,) bool
        The acquired phase-encode lines (M).
    prior : (y, x) complex
        The network's image z, in the units of the k-space (see :func:`from_channels`).
    lamda : float
        Weight of ||x - z||^2 against the squared k-space residual (both in k-space units squared);
        must be > 0.
    max_iter, tol : int, float
        Conjugate-gradient iterations at most; stop once the residual norm is below ``tol`` times the
        norm of the right-hand side (small lamda needs more iterations: condition number (1 + lamda) / lamda).
    device : SigPy device, -1 CPU, N GPU N.

    Returns
    -------
    (y, x) complex64, the solution of (S^H F^H M F S + lamda I) x = S^H F^H M y + lamda z.
    """
    if not (np.isfinite(lamda) and lamda > 0):
        raise InputError("data consistency", "lamda", "a finite number > 0", lamda)
    dev = sp.Device(device)
    weights = np.broadcast_to(lines[:, None], kspace.shape[1:]).astype(np.float32)
    with dev:
        xp = dev.xp
        A = sigpy.mri.linop.Sense(sp.to_device(maps, dev), weights=sp.to_device(weights, dev))
        y = sp.to_device((kspace * weights).astype(np.complex64), dev)
        z = sp.to_device(prior.astype(np.complex64), dev)
        rhs_norm = float(xp.linalg.norm(A.H(y) + lamda * z))
        app = sp.app.LinearLeastSquares(A, y, x=xp.array(z, copy=True), z=z, lamda=float(lamda), max_iter=max_iter,
                                        tol=tol * rhs_norm, show_pbar=False)
        return sp.to_device(app.run(), -1).astype(np.complex64)


def predicted_lines(image: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """(coils, ky, kx) k-space that ``image`` (y, x) predicts with ``maps`` (F S x)."""
    return sp.fft(maps * image, axes=(-2, -1))


def heldout_error(kspace: np.ndarray, maps: np.ndarray, fit_lines: np.ndarray, test_lines: np.ndarray,
                  prior: np.ndarray, lamdas: Sequence[float], line_weight: np.ndarray | None = None,
                  max_iter: int = 300, device: int = -1) -> np.ndarray:
    """Prediction error on held-out lines of the consistency solution from the other lines, per lamda.

    Parameters
    ----------
    kspace : (coils, ky, kx) complex, acquired k-space
    maps : (coils, y, x) complex sensitivities
    fit_lines, test_lines : (ky,) bool, disjoint
        The lines the solution may use (e.g. half 1) and those it must predict (half 2's outer lines).
    prior : (y, x) complex
        A network output computed from the ``fit_lines`` data only (e.g. f1(x1)); otherwise the
        held-out noise leaks into the prediction and the error favours large lamda.
    lamdas : the candidate values; ``np.inf`` stands for no consistency (x = prior)
    line_weight : (ky,) real, optional
        Weight of each test line's squared error, e.g. 1 / P(line in half) so that a variable-density
        sample estimates the error over all unseen lines; default 1.

    Returns
    -------
    (len(lamdas),) float: weighted sum of |F S x - y|^2 over the test lines and coils (k-space units squared).
    """
    if np.any(fit_lines & test_lines):
        raise InputError("held-out error", "test_lines", "lines disjoint from fit_lines", "shared lines")
    weight = np.ones(len(test_lines)) if line_weight is None else line_weight
    w = np.where(test_lines, weight, 0.0)[None, :, None]
    errors = []
    for lamda in lamdas:
        x = prior if np.isinf(lamda) else data_consistency(kspace, maps, fit_lines, prior, lamda, max_iter,
                                                           device=device)
        errors.append(float(np.sum(w * np.abs(predicted_lines(x, maps) - kspace) ** 2)))
    return np.asarray(errors)

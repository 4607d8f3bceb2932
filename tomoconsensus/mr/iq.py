"""MR image quality from two independent halves: a per-pixel noise map and the parallel-imaging g-factor.

* **Noise map.** Two images ``x1, x2`` of the same object with independent noise of equal statistics
  (two averages, two repetitions, or two disjoint k-space splits each reconstructed at full weight)
  differ only by noise, so ``d = (x1 - x2) / sqrt(2)`` has the noise variance of one image, and

      sigma(x) = sqrt( G * |d|^2 )(x)

  (``G`` a normalised Gaussian of ``smooth_px`` pixels; a local average of the squared difference)
  is a per-pixel noise map (:func:`noise_map`). For complex images ``|d|^2`` is the complex noise
  variance (real + imaginary parts); for magnitude images it is valid at SNR >~ 3 (Rician bias below).
  The prepared MR files' halves share the central k-space lines: their difference misses the noise of
  those lines, so a map from them under-estimates the noise at low spatial frequencies.
* **g-factor** (Pruessmann et al., MRM 42, 1999; Robson et al., MRM 60, 2008 for the pseudo-replica
  method): with noise maps of an R-fold accelerated reconstruction and of a fully sampled one of the
  same acquisition time per sample,

      g(x) = sigma_R(x) / (sigma_1(x) sqrt(R))           (:func:`g_factor`)

  and, for SENSE with coil sensitivities S (C coils) and white coil noise, the closed form over the
  R pixels that fold onto one, ``g_i = sqrt([(S^H S)^-1]_ii [S^H S]_ii)`` (:func:`sense_g_factor`).

Plugin target: ``tomoconsensus.mr.iq:noise_map`` (and :func:`g_factor`).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

SMOOTH_PX = 2.0


def noise_map(x1: np.ndarray, x2: np.ndarray, smooth_px: float = SMOOTH_PX) -> np.ndarray:
    """Per-pixel noise standard deviation of one image from two independent images (..., H, W), real or complex.

    Returns ``sqrt(G * |x1 - x2|^2 / 2)`` (same unit as the images; shape of the inputs), ``G`` a Gaussian
    of ``smooth_px`` pixels over the last two axes (0: no smoothing, one pixel's two-sample estimate).
    """
    d2 = np.abs(np.asarray(x1) - np.asarray(x2)).astype(np.float64) ** 2 / 2
    if smooth_px > 0:
        sigma = (0,) * (d2.ndim - 2) + (smooth_px, smooth_px)
        d2 = gaussian_filter(d2, sigma, mode="nearest")
    return np.sqrt(d2)


def g_factor(noise_accelerated: np.ndarray, noise_full: np.ndarray, acceleration: float) -> np.ndarray:
    """``sigma_R / (sigma_1 sqrt(R))`` per pixel (NaN where the full noise map is 0)."""
    if acceleration < 1:
        raise ValueError(f"g_factor: acceleration must be >= 1, not {acceleration}")
    full = np.asarray(noise_full, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(full > 0, np.asarray(noise_accelerated, np.float64) / (full * np.sqrt(acceleration)), np.nan)


def sense_g_factor(sens: np.ndarray, acceleration: int) -> np.ndarray:
    """Closed-form SENSE g-factor for Cartesian undersampling by ``acceleration`` along the rows.

    Parameters
    ----------
    sens : ndarray, shape (C, H, W), complex
        Coil sensitivities; ``H`` divisible by ``acceleration``. White, uncorrelated coil noise.

    Returns
    -------
    ndarray, shape (H, W)
        ``sqrt([(S^H S)^-1]_ii [S^H S]_ii)`` with ``S`` the (C, R) sensitivities of the R pixels
        ``i, i + H/R, ...`` that fold onto one; >= 1.
    """
    c, h, w = sens.shape
    if h % acceleration:
        raise ValueError(f"sense_g_factor: {h} rows are not divisible by R = {acceleration}")
    fold = sens.reshape(c, acceleration, h // acceleration, w).transpose(2, 3, 0, 1)  # (H/R, W, C, R)
    gram = np.conj(fold).transpose(0, 1, 3, 2) @ fold  # (H/R, W, R, R)
    inv = np.linalg.inv(gram)
    g = np.sqrt(np.real(np.diagonal(inv, axis1=-2, axis2=-1) * np.diagonal(gram, axis1=-2, axis2=-1)))
    return g.transpose(2, 0, 1).reshape(h, w)

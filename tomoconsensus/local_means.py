"""Keep the linear reconstruction's local means in a denoised image (a quantitative output).

A network trained on noisy data estimates E[x | data]; where a feature is small and its contrast is
low against the noise (an iodine insert's K-edge signature in one energy bin, a small lesion), that
estimate shrinks it towards what is common in the training data, and ROI means move (measured:
docs/spectral.md, 'Iodine after denoising'). The linear reconstruction x_est is unbiased but noisy,
and its noise sits at high spatial frequencies: FBP's noise power spectrum grows with the ramp
filter, so a smooth low-pass of x_est keeps little of its noise. This step takes the low
frequencies from x_est and the high frequencies from the network::

    out = f + G_sigma * (x_est - f)                                            (per channel)

with G_sigma a Gaussian of ``sigma`` pixels (scipy.ndimage, reflecting edges). ``out`` and x_est
have the same local means at scales well above sigma: inside a region of uniform offset between f
and x_est of radius r, the offset left at its centre is ``exp(-r^2 / (2 sigma^2))`` of it (the
Gaussian's mass outside r). With x_est unbiased, the bias of ``out`` is (I - G_sigma)(E[f] - x): the
network's bias at scales below sigma only; its low-passed part is removed.

The user states the smallest structure whose mean must be kept, by its diameter ``D`` (mm); sigma =
D / 8, so a structure of radius D / 2 = 4 sigma keeps its mean at its centre to exp(-8) = 3e-4 of
the network's offset. The price is the low-pass of x_est's noise, which stays: its share of the
noise variance is measured on noisy data alone (the halves' difference, :func:`kept_noise_fraction`)
and recorded with the output.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tomoconsensus.errors import InputError

#: sigma = D / SIGMAS_PER_DIAMETER: a disc of diameter D has radius 4 sigma.
SIGMAS_PER_DIAMETER = 8.0
#: Largest diameter (mm) accepted: 1 m, wider than any body (1e300 mm would ask for a Gaussian of 1e297 pixels).
MAX_DIAMETER_MM = 1000.0

__all__ = ["SIGMAS_PER_DIAMETER", "keep_local_means", "kept_noise_fraction", "sigma_px"]


def sigma_px(diameter_mm: float, pixel_size_mm: float | None, source: object = "--keep-means-mm") -> float:
    """Gaussian width in pixels for keeping the means of structures of ``diameter_mm`` and larger.

    Raises InputError (named) for a non-positive diameter, or a file without a pixel size (MR k-space).
    """
    if not np.isfinite(diameter_mm) or not 0 < diameter_mm <= MAX_DIAMETER_MM:
        raise InputError(source, "diameter_mm", f"a diameter in (0, {MAX_DIAMETER_MM:g}] mm (wider than a body, no "
                         "local mean is left to keep)", diameter_mm)
    if pixel_size_mm is None or not pixel_size_mm > 0:
        raise InputError(source, "pixel_size_mm", "a prepared file with a pixel size (its geometry)", pixel_size_mm)
    return diameter_mm / SIGMAS_PER_DIAMETER / pixel_size_mm


def _low_pass(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass over the last two axes of (..., H, W)."""
    return ndimage.gaussian_filter(images, (0,) * (images.ndim - 2) + (sigma, sigma), mode="reflect")


def keep_local_means(denoised: np.ndarray, x_est: np.ndarray, sigma: float) -> np.ndarray:
    """``denoised + G_sigma * (x_est - denoised)``.

    Parameters
    ----------
    denoised, x_est : (..., H, W) float arrays, same shape and units
        The network's output and the linear reconstruction of all the data.
    sigma : float
        Gaussian standard deviation in pixels (> 0).

    Returns
    -------
    float32 array like ``denoised``
    """
    if denoised.shape != x_est.shape:
        raise ValueError(f"denoised {denoised.shape} and x_est {x_est.shape} differ")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    residual = np.asarray(x_est, np.float64) - denoised
    return (denoised + _low_pass(residual, sigma)).astype(np.float32)


def kept_noise_fraction(x1: np.ndarray, x2: np.ndarray, sigma: float) -> float:
    """Share of x_est's noise variance that :func:`keep_local_means` keeps, from the halves alone.

    (x1 - x2) / 2 has the noise of (x1 + x2) / 2 and no object (independent, zero-mean halves of the
    same object): its low-pass variance over its variance.
    """
    noise = (np.asarray(x1, np.float64) - x2) / 2
    return float(_low_pass(noise, sigma).var() / noise.var())

"""Noise power spectrum (AAPM TG-233, sec. 4.3): 2-D and radial NPS, noise magnitude, peak and mean frequency.

For noise-only ROIs ``n_k(x)`` (K of them, ``Nx x Ny`` pixels of ``dx x dy`` mm), the 2-D NPS is

    NPS(fx, fy) = dx dy / (Nx Ny) * < |DFT(n_k - mean(n_k))|^2 >_k          [HU^2 mm^2]

on the DFT frequencies ``f = m / (N d)`` (mm^-1). By Parseval, ``sum NPS * dfx * dfy`` with
``df = 1/(N d)`` equals the mean of ``(n_k - mean)^2``, i.e. the pixel variance (:func:`integral`).
Noise-only images come from repeated realisations minus their ensemble mean, scaled by
``sqrt(K/(K-1))`` (:func:`ensemble_noise`), or from two independent images of the same object,
``(a - b) / sqrt(2)`` (the NPS of ``a - b`` scaled by 1/2; :func:`difference_noise`).

The radial NPS averages the 2-D NPS over annuli of width ``df`` (the DFT's own spacing) around 0.
TG-233's scalars: noise magnitude ``sqrt(integral)`` (HU), peak frequency ``argmax`` of the radial
NPS, mean frequency ``f_av = int f NPS(f) df / int NPS(f) df`` over the radial NPS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def ensemble_noise(images: np.ndarray) -> np.ndarray:
    """Noise-only images from K >= 2 realisations (K, H, W): ``(x_k - mean_k x) * sqrt(K/(K-1))``."""
    images = np.asarray(images, dtype=np.float64)
    k = len(images)
    if k < 2:
        raise ValueError("ensemble_noise: at least two realisations")
    return (images - images.mean(axis=0)) * np.sqrt(k / (k - 1))


def difference_noise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Noise-only images from pairs of independent images of one object: ``(a - b) / sqrt(2)``."""
    return (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) / np.sqrt(2.0)


def central_roi(images: np.ndarray, size: int) -> np.ndarray:
    """The central ``size x size`` pixels of images (..., H, W)."""
    h, w = images.shape[-2:]
    r0, c0 = (h - size) // 2, (w - size) // 2
    return images[..., r0:r0 + size, c0:c0 + size]


def nps_2d(noise: np.ndarray, pixel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """2-D NPS of noise-only ROIs (K, N, N): ``(nps, f)`` with nps (N, N) in unit^2 mm^2, fftshifted,
    and ``f`` (N,) the frequencies of each axis in mm^-1 (0 at index N // 2)."""
    noise = np.asarray(noise, dtype=np.float64)
    n = noise.shape[-1]
    if noise.shape[-2] != n:
        raise ValueError("nps_2d: square ROIs")
    centred = noise - noise.mean(axis=(-2, -1), keepdims=True)
    power = (np.abs(np.fft.fft2(centred)) ** 2).mean(axis=0)
    nps = np.fft.fftshift(power) * pixel_mm**2 / n**2
    return nps, np.fft.fftshift(np.fft.fftfreq(n, pixel_mm))


def integral(nps: np.ndarray, pixel_mm: float) -> float:
    """``sum NPS dfx dfy`` (unit^2): the pixel variance, by Parseval."""
    n = nps.shape[-1]
    return float(nps.sum() / (n * pixel_mm) ** 2)


def radial_average(image_2d: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over annuli of width ``df`` of a centred 2-D spectrum: ``(f_r, values)`` up to the axis Nyquist.

    Bin ``m`` holds the frequencies with ``|f| / df`` rounded to ``m``; ``f_r`` is the bin's mean ``|f|``.
    """
    df = f[1] - f[0]
    fx, fy = np.meshgrid(f, f)
    rho = np.hypot(fx, fy)
    idx = np.rint(rho / df).astype(int)
    n_bins = len(f) // 2 + 1
    keep = idx < n_bins
    counts = np.bincount(idx[keep], minlength=n_bins)
    f_r = np.bincount(idx[keep], rho[keep], minlength=n_bins) / np.maximum(counts, 1)
    values = np.bincount(idx[keep], image_2d[keep], minlength=n_bins) / np.maximum(counts, 1)
    return f_r, values


@dataclass
class NPSResult:
    """NPS of one method: 2-D (fftshifted) and radial, with TG-233's scalars.

    Attributes
    ----------
    nps_2d : ndarray (N, N), HU^2 mm^2;  f_axis : ndarray (N,), mm^-1
    f_radial, nps_radial : ndarray, mm^-1 and HU^2 mm^2
    noise_hu : float
        sqrt of the NPS integral (HU).
    pixel_std_hu : float
        Standard deviation of the noise-only pixels (HU), the Parseval check's other side.
    peak_frequency, mean_frequency : float, mm^-1
    """

    nps_2d: np.ndarray
    f_axis: np.ndarray
    f_radial: np.ndarray
    nps_radial: np.ndarray
    noise_hu: float
    pixel_std_hu: float
    peak_frequency: float
    mean_frequency: float

    def summary(self) -> dict:
        return {"noise_hu": self.noise_hu, "pixel_std_hu": self.pixel_std_hu,
                "parseval_ratio": self.noise_hu**2 / self.pixel_std_hu**2,
                "peak_frequency_per_mm": self.peak_frequency, "mean_frequency_per_mm": self.mean_frequency,
                "f_per_mm": self.f_radial.tolist(), "nps_hu2_mm2": self.nps_radial.tolist()}


def measure_nps(noise: np.ndarray, pixel_mm: float, pixel_variance: float) -> NPSResult:
    """NPS and TG-233 scalars of noise-only ROIs (K, N, N) in HU (see the module docstring).

    ``pixel_variance`` (HU^2) is the variance measured independently of the NPS (e.g. the per-pixel
    variance over the realisations, averaged over the ROI), reported beside the NPS integral.
    """
    nps, f = nps_2d(noise, pixel_mm)
    f_r, radial = radial_average(nps, f)
    mean_freq = float((f_r * radial).sum() / radial.sum())
    return NPSResult(nps, f, f_r, radial, float(np.sqrt(integral(nps, pixel_mm))), float(np.sqrt(pixel_variance)),
                     float(f_r[np.argmax(radial)]), mean_freq)


def fbp_white_noise_nps(rho: np.ndarray, sigma: float, n_views: int, du_mm: float) -> np.ndarray:
    """Continuous NPS of a Hann-filtered FBP of white sinogram noise, near the isocentre (mm^2 x image unit^2).

    Each view's noise ``p_k`` (variance ``sigma^2`` per channel of spacing ``du``) is filtered by the
    discrete ramp x Hann of :func:`tomoconsensus.tomo.fbp.ramp_filter`, ``G(nu) = |nu|/du (1 + cos 2 pi nu)/2``
    (nu in cycles per channel, periodic with period 1), linearly interpolated (``sinc^2`` in amplitude)
    and backprojected with the weight ``pi / V`` (a 360 degree scan of V views). A view adds power only
    along its own direction; averaging over the ``2V`` crossings of a circle of radius ``rho`` gives

        NPS(rho) = (pi / V) * sigma^2 * du * |G(rho du)|^2 * sinc^4(rho du) / rho
                 = (pi / V) * sigma^2 * du * rho * Hann^2(rho du) * sinc^4(rho du)   (|rho du| <= 1/2).

    Near the isocentre of a fan beam ``du`` is the channel spacing at the isocentre and the fan-beam
    weights are 1. The image's DFT NPS is this summed over the aliases ``rho -> |f + (m, n)/dx|``.
    """
    rho = np.abs(np.asarray(rho, dtype=np.float64))
    nu = rho * du_mm
    nu_folded = np.abs(nu - np.rint(nu))  # the discrete filter's response is periodic in nu
    g = nu_folded / du_mm * 0.5 * (1 + np.cos(2 * np.pi * nu))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.pi / n_views * sigma**2 * du_mm * g**2 * np.sinc(nu) ** 4 / rho
    return np.where(rho > 0, out, 0.0)


def aliased_2d(continuous, f: np.ndarray, pixel_mm: float, orders: int = 3) -> np.ndarray:
    """A radially symmetric continuous spectrum ``continuous(rho)`` sampled on a pixel grid: the sum of its
    aliases ``continuous(|f + (m, n)/pixel|)``, ``|m|, |n| <= orders``, on the centred DFT grid ``f`` (N,)."""
    fx, fy = np.meshgrid(f, f)
    total = np.zeros_like(fx)
    for m in range(-orders, orders + 1):
        for n in range(-orders, orders + 1):
            total += continuous(np.hypot(fx + m / pixel_mm, fy + n / pixel_mm))
    return total


def expected_periodogram(continuous, n: int, pixel_mm: float, oversample: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The mean of :func:`nps_2d` over ``n x n`` ROIs of a stationary process with the radially symmetric
    continuous spectrum ``continuous(rho)`` (so a model can be compared with a measurement bin by bin).

    The ROI's finite size convolves the pixel-lattice spectrum ``S`` (:func:`aliased_2d`) with the Fejer
    kernel: ``E[NPS](f) = dx^2 sum_{|k|<n} (1 - |kx|/n)(1 - |ky|/n) C[k] exp(-2 pi i f.k dx)``, with the
    autocovariance ``C = IDFT(S)`` taken on an ``oversample`` times finer frequency grid. Without this the
    cusp of a ramp-like NPS at f = 0 is under-estimated in the first bins (leakage from the window).

    Returns ``(nps, f)`` like :func:`nps_2d` (fftshifted, mm^-1).
    """
    m = n * oversample
    f_fine = np.fft.fftshift(np.fft.fftfreq(m, pixel_mm))
    spectrum = np.fft.ifftshift(aliased_2d(continuous, f_fine, pixel_mm))
    cov = np.fft.ifft2(spectrum).real / pixel_mm**2  # C[k], k on the circular lag grid of size m
    lag = np.fft.fftfreq(m, 1.0 / m)
    tri = np.clip(1 - np.abs(lag) / n, 0, None)
    weighted = np.fft.fft2(cov * tri[:, None] * tri[None, :]).real * pixel_mm**2
    return np.fft.fftshift(weighted[::oversample, ::oversample]), np.fft.fftshift(np.fft.fftfreq(n, pixel_mm))

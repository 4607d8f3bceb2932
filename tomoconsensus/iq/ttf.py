"""Task transfer function (TTF) from the edge of a circular insert (AAPM TG-233 sec. 4.2; Richard et al.,
Med Phys 39(7), 2012).

For an insert of radius R centred at ``c`` in the ensemble-mean image ``m`` (HU):

1. edge-spread function: the pixels' distances ``r = |x - c|`` within ``R +- L`` are binned in bins of
   ``pixel / 4`` (a circular edge samples every sub-pixel offset) and each bin's mean value is the
   ESF, oriented so that it rises from the background to the insert (``ESF(R - r)``);
   empty bins are filled by linear interpolation;
2. line-spread function: the derivative of the ESF (central differences), multiplied by a Tukey window
   (flat over the central ``+-L/2``, cosine tapers to 0 at ``+-L``) centred on the edge, to suppress the
   noise in the tails (a Hann window over ``+-L`` narrows wide LSFs: +15 % in f50 for a Gaussian blur of
   sigma 4.5 mm with L = 18 mm, against < 2 % with the Tukey window; tests/iq/test_ttf.py);
3. TTF: ``|FFT(LSF)|`` (zero-padded to 4096 samples), divided by its value at f = 0, so that it is 1
   at f = 0 for any contrast; f50 and f10 are where it first falls below 0.5 and 0.1 (linear
   interpolation between samples), in mm^-1.

A linear, shift-invariant reconstruction has the same TTF, its MTF, for every contrast; a non-linear
denoiser does not. Low-contrast inserts need many realisations: the noise of the ESF is reported as
the edge's contrast-to-noise ratio (:attr:`TTFResult.edge_cnr`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_FFT = 4096


@dataclass
class TTFResult:
    """TTF of one insert.

    Attributes
    ----------
    contrast_hu : float
        Nominal contrast of the insert (HU above water).
    measured_contrast_hu : float
        ESF inside minus outside the edge (HU).
    edge_cnr : float
        ``|measured contrast|`` over the standard error of one ESF bin far from the edge.
    f, ttf : ndarray
        Frequencies (mm^-1, up to the pixel Nyquist frequency) and TTF (dimensionless).
    f50, f10 : float
        mm^-1 (NaN where the TTF does not fall that low).
    """

    contrast_hu: float
    measured_contrast_hu: float
    edge_cnr: float
    f: np.ndarray
    ttf: np.ndarray
    f50: float
    f10: float

    def summary(self) -> dict:
        return {"contrast_hu": self.contrast_hu, "measured_contrast_hu": self.measured_contrast_hu,
                "edge_cnr": self.edge_cnr, "f50_per_mm": self.f50, "f10_per_mm": self.f10,
                "f_per_mm": self.f.tolist(), "ttf": self.ttf.tolist()}


def radial_esf(image: np.ndarray, centre_rc: tuple[float, float], radius_px: float, half_width_px: float,
               bin_px: float = 0.25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binned radial profile around an insert edge.

    Parameters
    ----------
    image : ndarray (H, W)
    centre_rc : (row, column) of the insert centre, in pixels (fractional)
    radius_px, half_width_px : insert radius and the read-out half-width L, pixels
    bin_px : bin width, pixels

    Returns
    -------
    t : ndarray
        Bin centres as signed distance ``R - r`` (pixels; > 0 inside the insert).
    esf : ndarray
        Mean value per bin (empty bins interpolated).
    sem : ndarray
        Standard error of each bin's mean (from the spread within the bin; NaN where < 2 samples).
    """
    rows, cols = np.indices(image.shape)
    t_pix = radius_px - np.hypot(rows - centre_rc[0], cols - centre_rc[1])
    keep = np.abs(t_pix) <= half_width_px
    n_bins = int(np.ceil(2 * half_width_px / bin_px))
    idx = np.clip(((t_pix[keep] + half_width_px) / bin_px).astype(int), 0, n_bins - 1)
    vals = image[keep].astype(np.float64)
    count = np.bincount(idx, minlength=n_bins)
    total = np.bincount(idx, vals, minlength=n_bins)
    sq = np.bincount(idx, vals**2, minlength=n_bins)
    t = -half_width_px + (np.arange(n_bins) + 0.5) * bin_px
    filled = count > 0
    mean = np.interp(t, t[filled], total[filled] / count[filled])
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (sq - total**2 / np.maximum(count, 1)) / (count - 1)
        sem = np.where(count > 1, np.sqrt(np.maximum(var, 0) / count), np.nan)
    return t, mean, sem


def ttf_from_esf(t_px: np.ndarray, esf: np.ndarray, pixel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """TTF (f in mm^-1 up to the pixel Nyquist frequency, normalised |FFT|) of an ESF rising with ``t``."""
    step_mm = (t_px[1] - t_px[0]) * pixel_mm
    lsf = np.gradient(esf, step_mm)
    half = (t_px[-1] - t_px[0]) / 2
    u = np.abs(np.clip((t_px - (t_px[0] + half)) / half, -1, 1))
    lsf = lsf * np.where(u < 0.5, 1.0, 0.5 * (1 + np.cos(2 * np.pi * (u - 0.5))))
    spectrum = np.abs(np.fft.rfft(lsf, N_FFT))
    f = np.fft.rfftfreq(N_FFT, step_mm)
    keep = f <= 0.5 / pixel_mm + 1e-12
    return f[keep], spectrum[keep] / spectrum[0]


def crossing(f: np.ndarray, curve: np.ndarray, level: float) -> float:
    """First frequency where ``curve`` falls below ``level`` (linear interpolation); NaN if it never does."""
    below = np.nonzero(curve < level)[0]
    if len(below) == 0 or below[0] == 0:
        return float("nan")
    i = below[0]
    return float(f[i - 1] + (curve[i - 1] - level) * (f[i] - f[i - 1]) / (curve[i - 1] - curve[i]))


def measure_ttf(mean_image_hu: np.ndarray, centre_rc: tuple[float, float], radius_px: float, pixel_mm: float,
                contrast_hu: float, half_width_px: float | None = None) -> TTFResult:
    """TTF of one circular insert in an ensemble-mean image (HU); see the module docstring.

    ``half_width_px`` defaults to 0.9 R (22.5 mm for the task phantom's 25 mm inserts).
    """
    half = 0.9 * radius_px if half_width_px is None else half_width_px
    t, esf, sem = radial_esf(mean_image_hu, centre_rc, radius_px, half)
    tail = np.abs(t) > 0.6 * half
    inside, outside = esf[t > 0.6 * half].mean(), esf[t < -0.6 * half].mean()
    measured = float(inside - outside)
    noise = float(np.nanmedian(sem[tail]))
    f, ttf = ttf_from_esf(t, esf, pixel_mm)
    return TTFResult(contrast_hu, measured, abs(measured) / noise if noise > 0 else float("inf"), f, ttf,
                     crossing(f, ttf, 0.5), crossing(f, ttf, 0.1))


def mtf_from_psf(psf: np.ndarray, pixel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged MTF of a finely sampled point-spread function (H, W): ``(f mm^-1, mtf)``, 1 at f = 0."""
    from tomoconsensus.iq.nps import radial_average

    n = psf.shape[-1]
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(psf - np.median(psf[0]))))
    f = np.fft.fftshift(np.fft.fftfreq(n, pixel_mm))
    f_r, mtf = radial_average(spectrum, f)
    return f_r, mtf / mtf[0]

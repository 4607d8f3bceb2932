"""PET image quality from the halves: noise power spectrum and noise level, and contrast recovery per sphere size.

* **Noise from the halves.** The two count-thinned halves x1, x2 of one acquisition carry independent
  noise of the same statistics (each half has half the counts), so ``(x1 - x2) / sqrt(2)`` is a
  noise-only image of one half (:func:`tomoconsensus.iq.nps.difference_noise`); its NPS over a square
  ROI of a uniform region is the half's NPS (unit^2 mm^2, :func:`tomoconsensus.iq.nps.measure_nps`),
  and, for a reconstruction whose noise variance scales as 1/counts, the full data's NPS is half of it
  (``full_scale`` = 1/2). Parseval: ``sum NPS df^2`` equals the pixel variance of the noise images.
* **Contrast recovery vs size** (NEMA NU 2-2018 sec. 7.4, :func:`tomoconsensus.pet.metrics.contrast_recovery`):
  one row per hot sphere/insert diameter, CR = (C_H / C_B - 1) / (r - 1), with C_H the mean inside
  the insert's disc and C_B the mean of background ROIs. For a disc of radius R and ratio r in a
  uniform background, imaged with a Gaussian PSF of standard deviation s, the expected CR over the
  full disc ROI is (:func:`gaussian_disc_recovery`)

      CR(R, s) = (1 / (pi R^2)) int |D(f)|^2 exp(-2 pi^2 s^2 f^2) 2 pi f df,   D(f) = pi R^2 2 J1(2 pi R f) / (2 pi R f)

  (the mean over the disc of the disc convolved with the PSF), 1 for R >> s, (R / s)^2 / 2 for R << s.

Plugin target: ``tomoconsensus.pet.iq:recovery_table`` (and :func:`halves_nps`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import j1

from tomoconsensus.iq.nps import NPSResult, central_roi, difference_noise, measure_nps
from tomoconsensus.pet.metrics import background_variability, contrast_recovery, disc_masks


def halves_nps(x1: np.ndarray, x2: np.ndarray, pixel_mm: float, roi_px: int,
               centre_rc: tuple[int, int] | None = None) -> tuple[NPSResult, float]:
    """NPS of one half from the halves' difference over a ``roi_px`` square (uniform region).

    Parameters
    ----------
    x1, x2 : ndarray, shape (K, H, W) or (H, W)
        The two half reconstructions of K slices/acquisitions (activity unit, e.g. SUV).
    pixel_mm : float
    roi_px : int
        Side of the square ROI, pixels.
    centre_rc : (row, col), optional
        Centre of the ROI (default the image centre).

    Returns
    -------
    (NPSResult, full_scale)
        The half's NPS (noise_hu is the half's noise in the image unit) and 0.5, the factor that turns
        it into the full data's NPS for a 1/counts variance.
    """
    x1, x2 = np.asarray(x1), np.asarray(x2)
    noise = difference_noise(x1.reshape((-1,) + x1.shape[-2:]), x2.reshape((-1,) + x2.shape[-2:]))
    if centre_rc is None:
        roi = central_roi(noise, roi_px)
    else:
        r0, c0 = centre_rc[0] - roi_px // 2, centre_rc[1] - roi_px // 2
        if r0 < 0 or c0 < 0 or r0 + roi_px > noise.shape[-2] or c0 + roi_px > noise.shape[-1]:
            raise ValueError(f"halves_nps: the {roi_px}-pixel ROI at {centre_rc} leaves the image")
        roi = noise[..., r0:r0 + roi_px, c0:c0 + roi_px]
    return measure_nps(roi, pixel_mm, float(np.mean((roi - roi.mean(axis=(-2, -1), keepdims=True)) ** 2))), 0.5


def recovery_table(image: np.ndarray, centres_rc: Sequence[tuple[float, float]], diameters_mm: Sequence[float],
                   ratios: Sequence[float], backgrounds: Sequence[np.ndarray], pixel_mm: float) -> list[dict]:
    """Contrast recovery per insert, sorted by diameter: ``[{diameter_mm, true_ratio, cr, bv}, ...]``.

    ``image`` (H, W) in an activity unit; inserts at (row, col) centres with diameters (mm) and true
    insert-to-background ratios; ``backgrounds`` the background ROI masks (NEMA: ROIs of the insert's
    size; here one set for every insert). ``bv`` is the background variability SD_B / C_B.
    """
    bv = background_variability(image, backgrounds) if len(backgrounds) >= 2 else float("nan")
    rows = []
    for rc, d, r in zip(centres_rc, diameters_mm, ratios, strict=True):
        lesion = disc_masks(np.shape(image), [rc], d / 2 / pixel_mm)[0]
        rows.append({"diameter_mm": float(d), "true_ratio": float(r),
                     "cr": contrast_recovery(image, lesion, backgrounds, r), "bv": bv})
    return sorted(rows, key=lambda row: row["diameter_mm"])


def recovery_markdown(tables: dict[str, list[dict]]) -> str:
    """Markdown: one row per method, one column per diameter (CR in %)."""
    diameters = [row["diameter_mm"] for row in next(iter(tables.values()))]
    lines = ["| Method | " + " | ".join(f"CR {d:g} mm" for d in diameters) + " | BV |",
             "|---|" + "---|" * (len(diameters) + 1)]
    for name, rows in tables.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * r['cr']:.1f} %" for r in rows)
                     + f" | {100 * rows[0]['bv']:.1f} % |")
    return "\n".join(lines) + "\n"


def gaussian_disc_recovery(radius_mm: float, sigma_mm: float, n: int = 20001) -> float:
    """Expected contrast recovery of a disc of ``radius_mm`` seen through a Gaussian PSF (see the module docstring)."""
    f_max = 8.0 / max(min(radius_mm, sigma_mm), 1e-6)
    f = np.linspace(0.0, f_max, n)
    x = 2 * np.pi * radius_mm * f
    with np.errstate(invalid="ignore", divide="ignore"):
        airy = np.where(x > 0, 2 * j1(x) / x, 1.0)
    integrand = np.pi * radius_mm**2 * airy**2 * np.exp(-2 * np.pi**2 * sigma_mm**2 * f**2) * 2 * np.pi * f
    return float(np.trapezoid(integrand, f))

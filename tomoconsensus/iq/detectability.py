"""Detectability index d' of the non-prewhitening observer with an eye filter (NPWE), from TTF and NPS.

For a task of contrast ``C`` (HU) and disc diameter ``D`` (mm), the task function is the Fourier
transform of the disc, ``W(f) = C pi R^2 * 2 J1(2 pi R f) / (2 pi R f)`` (HU mm^2, R = D/2), and
(AAPM TG-233 eq. 21; Samei et al., Med Phys 46(11), 2019; Solomon & Samei, 2016)

    d'^2 = [ int W^2 TTF^2 E^2 df ]^2 / int W^2 TTF^2 E^4 NPS df          (2-D integrals over f, mm^-2)

with radially symmetric TTF (per contrast, interpolated to the task contrast), NPS (HU^2 mm^2) and
the eye filter of Eckstein et al. used by TG-233,

    E(rho) = rho^1.5 exp(-0.98 rho^0.68),   rho = f * (FOV / display_mm) * viewing_mm * pi / 180

in cycles per degree (peak at 3.3 cycles/degree), for an image of field of view FOV shown at
``display_mm`` (300 mm) and viewed from ``viewing_mm`` (500 mm). No internal noise is modelled.
The integrals run over the radial frequency up to the pixel Nyquist frequency, ``df = 2 pi f df``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import j1

#: Tasks of the report: (diameter mm, contrast HU).
TASKS = ((5.0, 10.0), (5.0, 50.0), (10.0, 10.0), (10.0, 50.0))
VIEWING_MM = 500.0
DISPLAY_MM = 300.0


def task_function(f: np.ndarray, diameter_mm: float, contrast_hu: float) -> np.ndarray:
    """Fourier transform (HU mm^2) of a disc of ``contrast_hu`` and ``diameter_mm`` at radial frequencies ``f``."""
    r = diameter_mm / 2
    x = 2 * np.pi * r * np.asarray(f, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        airy = np.where(x > 0, 2 * j1(x) / x, 1.0)
    return contrast_hu * np.pi * r**2 * airy


def eye_filter(f: np.ndarray, fov_mm: float, display_mm: float = DISPLAY_MM,
               viewing_mm: float = VIEWING_MM) -> np.ndarray:
    """Eckstein's eye filter ``rho^1.5 exp(-0.98 rho^0.68)`` at object frequencies ``f`` (mm^-1)."""
    rho = np.asarray(f, dtype=np.float64) * fov_mm / display_mm * viewing_mm * np.pi / 180
    return rho**1.5 * np.exp(-0.98 * rho**0.68)


def npwe_dprime(f: np.ndarray, ttf: np.ndarray, nps: np.ndarray, diameter_mm: float, contrast_hu: float,
                fov_mm: float | None = None, eye: bool = True) -> float:
    """NPWE (``eye=True``) or NPW (``eye=False``) d' on a radial frequency grid.

    Parameters
    ----------
    f : ndarray
        Radial frequencies, mm^-1, increasing, from 0 to the pixel Nyquist frequency.
    ttf, nps : ndarray
        TTF (dimensionless) and NPS (HU^2 mm^2) on ``f``.
    fov_mm : float
        Displayed field of view (needed with ``eye``).
    """
    f = np.asarray(f, dtype=np.float64)
    w2t2 = task_function(f, diameter_mm, contrast_hu) ** 2 * np.asarray(ttf, dtype=np.float64) ** 2
    e2 = eye_filter(f, fov_mm) ** 2 if eye else np.ones_like(f)
    ring = 2 * np.pi * f
    num = np.trapezoid(w2t2 * e2 * ring, f)
    den = np.trapezoid(w2t2 * e2**2 * np.asarray(nps, dtype=np.float64) * ring, f)
    return float(num / np.sqrt(den))


def on_grid(f_grid: np.ndarray, f: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation of a radial curve onto ``f_grid`` (held constant beyond its ends)."""
    return np.interp(f_grid, f, values)


def ttf_for_contrast(contrast_hu: float, contrasts: np.ndarray, ttfs: np.ndarray) -> np.ndarray:
    """The TTF for a task contrast: the measured TTF of the insert of the nearest contrast magnitude
    with the same sign where there is one (TTFs are measured at a few contrasts only)."""
    contrasts = np.asarray(contrasts, dtype=np.float64)
    same = np.sign(contrasts) == np.sign(contrast_hu)
    pool = np.nonzero(same)[0] if same.any() else np.arange(len(contrasts))
    best = pool[np.argmin(np.abs(contrasts[pool] - contrast_hu))]
    return ttfs[best]

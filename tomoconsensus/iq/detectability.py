"""Detectability index d' of the non-prewhitening observer with an eye filter (NPWE), from TTF and NPS.

For a task of contrast ``C`` (image units, e.g. HU) and disc diameter ``D`` (mm), the task function
is the Fourier transform of the disc, ``W(f) = C pi R^2 * 2 J1(2 pi R f) / (2 pi R f)`` (unit mm^2,
R = D/2), and (AAPM TG-233; Samei et al., Med Phys 46(11), 2019; Richard & Samei 2012)

    d'^2 = [ int W^2 TTF^2 E^2 df ]^2 / int W^2 TTF^2 E^4 NPS df          (2-D integrals over f, mm^-2)

with radially symmetric TTF (dimensionless), NPS (unit^2 mm^2) and Burgess's eye filter (the form
TG-233's NPWE observer is described with; its constants were not checked against the report's text),

    E(rho) = rho^n exp(-c rho^2),   n = 1.3,   c = n / (2 rho_peak^2)  (peak at rho_peak = 4 cycles/degree)

with ``rho`` in cycles per degree of visual angle. An image of field of view FOV (mm) shown at
``display_mm`` on the screen and viewed from ``viewing_mm`` magnifies an object frequency ``f``
(mm^-1) to ``f FOV / display_mm`` cycles per mm of screen, and one degree of visual angle spans
``viewing_mm * pi / 180`` mm of screen (small angle), so

    rho = f * (FOV / display_mm) * viewing_mm * pi / 180.

(``eye_filter(..., form="eckstein")`` is the alternative ``rho^1.5 exp(-0.98 rho^0.68)``, peak at
3.3 cycles/degree, also found in the CT literature; it was this module's default before and is kept
for comparison.) No internal noise is modelled. The integrals run over the radial frequency up to
the pixel Nyquist frequency, ``df = 2 pi f df``. With ``eye=False`` this is the NPW observer; for
white noise NPS = N0 and TTF = 1 its d'^2 = int W^2 df / N0 = C^2 pi R^2 / N0 (Parseval).
"""

from __future__ import annotations

import numpy as np
from scipy.special import j1

VIEWING_MM = 500.0
DISPLAY_MM = 300.0
#: Burgess eye filter: exponent n and the peak (cycles/degree) that sets c = n / (2 peak^2).
EYE_N = 1.3
EYE_PEAK_CPD = 4.0
EYE_FORMS = ("burgess", "eckstein")


def task_function(f: np.ndarray, diameter_mm: float, contrast: float) -> np.ndarray:
    """Fourier transform (unit mm^2) of a disc of ``contrast`` and ``diameter_mm`` at radial frequencies ``f``."""
    r = diameter_mm / 2
    x = 2 * np.pi * r * np.asarray(f, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        airy = np.where(x > 0, 2 * j1(x) / x, 1.0)
    return contrast * np.pi * r**2 * airy


def cycles_per_degree(f: np.ndarray, fov_mm: float, display_mm: float = DISPLAY_MM,
                      viewing_mm: float = VIEWING_MM) -> np.ndarray:
    """Object frequency ``f`` (mm^-1) seen as cycles per degree of visual angle (see the module docstring)."""
    return np.asarray(f, dtype=np.float64) * fov_mm / display_mm * viewing_mm * np.pi / 180


def eye_filter(f: np.ndarray, fov_mm: float, display_mm: float = DISPLAY_MM, viewing_mm: float = VIEWING_MM,
               form: str = "burgess") -> np.ndarray:
    """Eye filter at object frequencies ``f`` (mm^-1): Burgess ``rho^1.3 exp(-c rho^2)`` peaking at 4 cycles/degree
    (default) or Eckstein's ``rho^1.5 exp(-0.98 rho^0.68)``; unnormalised (d' does not depend on its scale)."""
    rho = cycles_per_degree(f, fov_mm, display_mm, viewing_mm)
    if form == "burgess":
        c = EYE_N / (2 * EYE_PEAK_CPD**2)
        return rho**EYE_N * np.exp(-c * rho**2)
    if form == "eckstein":
        return rho**1.5 * np.exp(-0.98 * rho**0.68)
    raise ValueError(f"eye_filter: form must be one of {EYE_FORMS}, not {form!r}")


def dprime_radial(f: np.ndarray, w: np.ndarray, ttf: np.ndarray, nps: np.ndarray, eye: np.ndarray | None) -> float:
    """NPWE d' (NPW where ``eye`` is None) of a radially symmetric task ``w`` (unit mm^2) on radial frequencies
    ``f`` (mm^-1, increasing from 0), with TTF, NPS (unit^2 mm^2) and eye filter on the same grid."""
    f = np.asarray(f, dtype=np.float64)
    w2t2 = np.asarray(w, dtype=np.float64) ** 2 * np.asarray(ttf, dtype=np.float64) ** 2
    e2 = np.ones_like(f) if eye is None else np.asarray(eye, dtype=np.float64) ** 2
    ring = 2 * np.pi * f
    num = np.trapezoid(w2t2 * e2 * ring, f)
    den = np.trapezoid(w2t2 * e2**2 * np.asarray(nps, dtype=np.float64) * ring, f)
    return float(num / np.sqrt(den))


def npwe_dprime(f: np.ndarray, ttf: np.ndarray, nps: np.ndarray, diameter_mm: float, contrast: float,
                fov_mm: float | None = None, eye: bool = True, form: str = "burgess",
                display_mm: float = DISPLAY_MM, viewing_mm: float = VIEWING_MM) -> float:
    """NPWE (``eye=True``) or NPW (``eye=False``) d' of a disc task on a radial frequency grid.

    Parameters
    ----------
    f : ndarray
        Radial frequencies, mm^-1, increasing, from 0 to the pixel Nyquist frequency.
    ttf, nps : ndarray
        TTF (dimensionless) and NPS (unit^2 mm^2) on ``f``.
    diameter_mm, contrast : float
        The disc (contrast in the image's unit).
    fov_mm : float
        Displayed field of view (needed with ``eye``).
    form : str
        Eye filter, ``"burgess"`` (default) or ``"eckstein"`` (:func:`eye_filter`).
    """
    e = eye_filter(f, fov_mm, display_mm, viewing_mm, form) if eye else None
    return dprime_radial(f, task_function(f, diameter_mm, contrast), ttf, nps, e)


def on_grid(f_grid: np.ndarray, f: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation of a radial curve onto ``f_grid`` (held constant beyond its ends)."""
    return np.interp(f_grid, f, values)


def ttf_for_contrast(contrast: float, contrasts: np.ndarray, ttfs: np.ndarray) -> np.ndarray:
    """The TTF for a task contrast: the measured TTF of the insert of the nearest contrast magnitude
    with the same sign where there is one (TTFs are measured at a few contrasts only)."""
    contrasts = np.asarray(contrasts, dtype=np.float64)
    same = np.sign(contrasts) == np.sign(contrast)
    pool = np.nonzero(same)[0] if same.any() else np.arange(len(contrasts))
    best = pool[np.argmin(np.abs(contrasts[pool] - contrast))]
    return ttfs[best]

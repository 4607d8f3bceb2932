"""NPS, TTF per insert and NPWE d' of one method's images of two task phantoms (any modality).

A modality's ``iq`` (e.g. CT's, in its plugin) simulates a uniform phantom and an insert
phantom, reconstructs or denoises them with every method, and hands the images here as
:class:`MethodImages` with the inserts' positions (:class:`Insert`). Images are in the modality's
display unit (HU for CT); the JSON keys keep the suffix ``_hu`` for that unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tomoconsensus.iq import detectability as det
from tomoconsensus.iq import nps as nps_mod
from tomoconsensus.iq import ttf as ttf_mod


@dataclass
class MethodImages:
    """One method's images of the realisations, display unit: (n, N, N) each; half outputs for uncertainty."""

    uniform: np.ndarray
    inserts: np.ndarray
    halves: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # h1, h2, y1 on the insert phantom


@dataclass(frozen=True)
class Insert:
    """A circular insert of the insert phantom: centre (row, column; pixels), radius (pixels), contrast (unit)."""

    centre_rc: tuple[float, float]
    radius_px: float
    contrast: float


@dataclass
class IQResult:
    setup: dict
    methods: dict[str, dict] = field(default_factory=dict)
    curves: dict[str, dict] = field(default_factory=dict)  # for the plots (not in the JSON twice)


def measure_method(images: MethodImages, pixel_mm: float, roi_px: int, inserts: list[Insert], fov_mm: float,
                   tasks: tuple[tuple[float, float], ...]) -> tuple[dict, dict]:
    """NPS (central ``roi_px`` square of the uniform phantom), TTF per insert (ensemble mean of the insert
    phantom) and NPWE d' for ``tasks`` ((diameter mm, contrast), ...) of one method: (JSON summary, curves).
    d' is given with the Burgess eye filter (``dprime_npwe``) and, for comparison, Eckstein's
    (``dprime_npwe_eckstein``; :func:`tomoconsensus.iq.detectability.eye_filter`)."""
    roi = nps_mod.central_roi(images.uniform, roi_px)
    nps = nps_mod.measure_nps(nps_mod.ensemble_noise(roi), pixel_mm, float(roi.var(axis=0, ddof=1).mean()))
    mean_img = images.inserts.mean(axis=0)
    ttfs = [ttf_mod.measure_ttf(mean_img, ins.centre_rc, ins.radius_px, pixel_mm, ins.contrast) for ins in inserts]
    f_grid = ttfs[0].f
    nps_on = det.on_grid(f_grid, nps.f_radial, nps.nps_radial)
    contrasts = np.array([t.contrast_hu for t in ttfs])
    ttf_stack = np.stack([det.on_grid(f_grid, t.f, t.ttf) for t in ttfs])
    dprime: dict[str, dict[str, float]] = {form: {} for form in det.EYE_FORMS}
    for diameter, contrast in tasks:
        ttf = det.ttf_for_contrast(contrast, contrasts, ttf_stack)
        for form in det.EYE_FORMS:
            dprime[form][f"{diameter:g}mm_{contrast:g}HU"] = det.npwe_dprime(f_grid, ttf, nps_on, diameter, contrast,
                                                                             fov_mm, form=form)
    summary = {"nps": {k: v for k, v in nps.summary().items() if k not in ("f_per_mm", "nps_hu2_mm2")},
               "ttf": [{k: v for k, v in t.summary().items() if k not in ("f_per_mm", "ttf")} for t in ttfs],
               "dprime_npwe": dprime["burgess"], "dprime_npwe_eckstein": dprime["eckstein"]}
    curves = {"nps": {"f_per_mm": nps.f_radial.tolist(), "nps_hu2_mm2": nps.nps_radial.tolist()},
              "nps_2d": nps.nps_2d, "nps_f_axis": nps.f_axis,
              "ttf": {f"{t.contrast_hu:+g}": t.ttf.tolist() for t in ttfs}, "ttf_f_per_mm": f_grid.tolist()}
    return summary, curves


def observer_setup(fov_mm: float, tasks: tuple[tuple[float, float], ...]) -> dict:
    """The ``tasks`` and ``observer`` entries of an iq report's setup block."""
    return {"tasks": [{"diameter_mm": d, "contrast_hu": c} for d, c in tasks],
            "observer": {"model": "NPWE", "viewing_mm": det.VIEWING_MM, "display_mm": det.DISPLAY_MM, "fov_mm": fov_mm,
                         "eye_filter": f"rho^{det.EYE_N:g} exp(-c rho^2), peak at {det.EYE_PEAK_CPD:g} cycles/degree",
                         "eye_filter_eckstein": "rho^1.5 exp(-0.98 rho^0.68) (dprime_npwe_eckstein)"}}

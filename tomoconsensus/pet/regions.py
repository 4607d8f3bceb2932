"""Lesion and background regions of simulated slices, and the PET quality table over them.

For each simulated slice on the reconstruction grid:

* lesion masks: pixels whose centre lies inside each hot disc;
* background: pixels whose 2 x 2 simulation sub-pixels are all soft tissue (SUV 1), farther than
  two lesion radii + 2 FWHM from every lesion;
* background ROIs: up to ``n_background_rois`` discs of the median lesion's size inside it (NEMA
  uses 60 over 5 slices; 2-D slices hold fewer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_erosion

from tomoconsensus.pet.metrics import (
    background_cov,
    background_variability,
    contrast_recovery,
    lesion_suv_bias,
    place_background_rois,
)
from tomoconsensus.pet.simulate import SOFT_TISSUE, Lesion, SimulatedSlice, disc_mask
from tomoconsensus.tomo.geometry import ParallelBeamGeometry


@dataclass
class SliceRegions:
    """Masks (N, N) of one slice: lesions with their true SUV, background, background ROIs."""

    lesions: list[np.ndarray]
    lesion_suv: list[float]
    background: np.ndarray
    background_rois: list[np.ndarray]


def slice_regions(sim: SimulatedSlice, geom: ParallelBeamGeometry, blur_fwhm_mm: float,
                  rng: np.random.Generator, n_background_rois: int = 12) -> SliceRegions:
    """Regions of a simulated slice on the reconstruction grid ``geom`` (half the simulation's resolution)."""
    n = geom.image_size
    soft = (sim.classes == SOFT_TISSUE).reshape(n, 2, n, 2).all(axis=(1, 3))
    background = soft.copy()
    for lesion in sim.lesions:
        margin = Lesion(lesion.x_mm, lesion.y_mm, 2 * lesion.diameter_mm + 4 * blur_fwhm_mm, 0.0)
        background &= ~disc_mask(geom, margin)
    lesions = [disc_mask(geom, lesion) for lesion in sim.lesions]
    radius_px = float(np.median([lesion.diameter_mm for lesion in sim.lesions] or [10.0])) / 2 / geom.pixel_size_mm
    rois = place_background_rois(binary_erosion(background), radius_px, n_background_rois, rng)
    return SliceRegions(lesions, [lesion.suv for lesion in sim.lesions], background, rois)


def quality_table(images: dict[str, np.ndarray], reference: np.ndarray, regions: list[SliceRegions],
                  background_suv: float = 1.0) -> dict[str, dict[str, float]]:
    """Per method, means over lesions/slices of SUVmean/SUVmax bias (vs reference), contrast
    recovery, background variability (NEMA) and background CoV.

    Parameters
    ----------
    images : dict name -> (slices, 1, N, N)
    reference : (slices, 1, N, N), the noiseless reconstruction
    regions : one :class:`SliceRegions` per slice
    """
    table: dict[str, dict[str, float]] = {}
    for name, stack in {"Reference": reference, **images}.items():
        rows: dict[str, list[float]] = {k: [] for k in ("suv_mean_bias", "suv_max_bias", "contrast_recovery",
                                                        "background_variability", "background_cov")}
        for image, ref, reg in zip(stack[:, 0], reference[:, 0], regions, strict=True):
            for mask, suv in zip(reg.lesions, reg.lesion_suv, strict=True):
                for key, value in lesion_suv_bias(image, ref, mask).items():
                    rows[key].append(value)
                if len(reg.background_rois) >= 2:
                    rows["contrast_recovery"].append(contrast_recovery(image, mask, reg.background_rois,
                                                                       suv / background_suv))
            if len(reg.background_rois) >= 2:
                rows["background_variability"].append(background_variability(image, reg.background_rois))
            if reg.background.any():
                rows["background_cov"].append(background_cov(image, reg.background))
        table[name] = {k: float(np.mean(v)) if v else float("nan") for k, v in rows.items()}
    return table


def quality_markdown(table: dict[str, dict[str, float]]) -> str:
    """The table as Markdown, in percent, methods as columns."""
    methods = list(table)
    labels = {"suv_mean_bias": "SUVmean bias (%)", "suv_max_bias": "SUVmax bias (%)",
              "contrast_recovery": "Contrast recovery (%)", "background_variability": "Background variability (%)",
              "background_cov": "Background CoV (%)"}
    lines = ["| PET index | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for key, label in labels.items():
        lines.append(f"| {label} | " + " | ".join(f"{100 * table[m][key]:.1f}" for m in methods) + " |")
    return "\n".join(lines) + "\n"


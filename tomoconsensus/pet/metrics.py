"""PET image-quality metrics: lesion SUV bias, NEMA-style contrast recovery and background variability.

Images are 2-D arrays in SUV (or any activity unit: ratios and relative biases are unit-free).
Regions are boolean masks of the image's shape.

* SUVmean / SUVmax of a lesion: mean / maximum inside its mask; their bias is relative to the
  same statistic of the reference (noiseless reconstruction) or of the true activity.
* Contrast recovery of a hot lesion (NEMA NU 2-2018, section 7.4): with ``C_H`` the lesion ROI mean,
  ``C_B`` the mean of the background ROI means and ``r`` the true lesion-to-background ratio,
  ``CR = (C_H / C_B - 1) / (r - 1)`` (x100 for percent).
* Background variability: ``BV = SD_B / C_B``, ``SD_B`` the sample standard deviation (K - 1) of the
  K background ROI means, ROIs the lesion's size (NEMA: 60 ROIs over 5 slices; here those given).
* Background coefficient of variation: pixel std / pixel mean inside one background mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def suv_mean_max(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """SUVmean and SUVmax of ``image`` inside ``mask``."""
    values = np.asarray(image, np.float64)[mask]
    if values.size == 0:
        raise ValueError("empty lesion mask")
    return float(values.mean()), float(values.max())


def lesion_suv_bias(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Relative bias of SUVmean and SUVmax, ``(image - reference) / reference``, inside ``mask``."""
    mean, peak = suv_mean_max(image, mask)
    ref_mean, ref_peak = suv_mean_max(reference, mask)
    return {"suv_mean_bias": mean / ref_mean - 1.0, "suv_max_bias": peak / ref_peak - 1.0}


def disc_masks(shape: tuple[int, int], centres_rc: Sequence[tuple[float, float]], radius_px: float) -> list[np.ndarray]:
    """Disc masks of ``radius_px`` pixels around (row, col) centres."""
    rows, cols = np.indices(shape)
    return [(rows - r) ** 2 + (cols - c) ** 2 <= radius_px**2 for r, c in centres_rc]


def contrast_recovery(image: np.ndarray, lesion: np.ndarray, backgrounds: Sequence[np.ndarray],
                      true_ratio: float) -> float:
    """NEMA hot contrast recovery ``(C_H / C_B - 1) / (true_ratio - 1)`` (1 = full recovery)."""
    if true_ratio == 1.0:
        raise ValueError("true_ratio must differ from 1")
    c_h = float(np.asarray(image, np.float64)[lesion].mean())
    c_b = float(np.mean(roi_means(image, backgrounds)))
    return (c_h / c_b - 1.0) / (true_ratio - 1.0)


def roi_means(image: np.ndarray, rois: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of ``image`` in each ROI, shape (K,)."""
    image = np.asarray(image, np.float64)
    return np.array([image[r].mean() for r in rois])


def background_variability(image: np.ndarray, backgrounds: Sequence[np.ndarray]) -> float:
    """NEMA background variability ``SD_B / C_B`` over K >= 2 background ROIs (sample SD, K - 1)."""
    means = roi_means(image, backgrounds)
    if len(means) < 2:
        raise ValueError("background variability needs at least 2 background ROIs")
    return float(means.std(ddof=1) / means.mean())


def background_cov(image: np.ndarray, background: np.ndarray) -> float:
    """Pixel coefficient of variation (std / mean, population std) inside one background mask."""
    values = np.asarray(image, np.float64)[background]
    return float(values.std() / values.mean())


def place_background_rois(background: np.ndarray, radius_px: float, count: int, rng: np.random.Generator,
                          tries: int = 2000) -> list[np.ndarray]:
    """Up to ``count`` non-overlapping disc ROIs lying entirely inside the ``background`` mask."""
    candidates = np.argwhere(background)
    rois: list[np.ndarray] = []
    taken = np.zeros_like(background, dtype=bool)
    for _ in range(tries):
        if len(rois) == count or not len(candidates):
            break
        r, c = candidates[rng.integers(len(candidates))]
        disc = disc_masks(background.shape, [(r, c)], radius_px)[0]
        if np.all(background[disc]) and not np.any(taken[disc]):
            rois.append(disc)
            taken |= disc
    return rois

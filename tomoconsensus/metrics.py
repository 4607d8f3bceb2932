"""Image-quality metrics shared by every modality, and each modality's presentation (docs/metrics.md).

* RMSE over all pixels (:func:`rmse`) or a region (:func:`region_rmse`), in the units given.
* SSIM: scikit-image ``structural_similarity`` with a Gaussian window (sigma = 1.5), no sample
  covariance correction (Wang et al. 2004's settings), K1 = 0.01, K2 = 0.03 (:func:`ssim`).
* PSNR with an explicit data range (:func:`psnr`).

What a modality measures with them (units, display window, body/air split, magnitude images, table
rows) is its *presentation*, a class (defaults: :class:`Presentation`) found through the registry
by :func:`tomoconsensus.presenters.presenter`. Nothing here depends on a modality's name, and this
module imports neither the registry nor any presentation (they import it).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


class Presentation:
    """Defaults for a modality whose display images are non-negative (magnitude, activity, counts):
    window 0 to the reference's maximum, differences shown within 20 % of it.

    A presentation class supplies (see docs/adding-a-modality.md): ``report_rows`` ((metric key, row
    label, scale) of the tables), ``unit_label``, ``error_key`` (the RMSE's metric key),
    ``baseline_names(attrs)``, ``display(image) -> (H, W)``, ``display_window(reference_2d)``,
    ``difference_range(window)``, ``roi_value_range(reference_2d)``, ``slice_metrics(image, reference)``
    and, optionally, ``settings`` (a dict recorded in metrics.json). Its module must not import torch
    or astra (``evaluate`` and ``report`` load it).
    """

    settings: dict = {}

    @staticmethod
    def display_window(reference_2d: np.ndarray) -> tuple[float, float]:
        return 0.0, float(reference_2d.max())

    @staticmethod
    def difference_range(window: tuple[float, float]) -> float:
        return 0.2 * window[1]

    @staticmethod
    def calibration_mask(x_est: np.ndarray) -> np.ndarray:
        """Pixels of prepared images (..., C, H, W) where an uncertainty map is calibrated: all of them."""
        return np.ones(np.shape(x_est), dtype=bool)


def rmse(image: np.ndarray, reference: np.ndarray) -> float:
    """Root mean squared error over all pixels."""
    return float(np.sqrt(np.mean((np.asarray(image, np.float64) - np.asarray(reference, np.float64)) ** 2)))


def ssim(image: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """SSIM with the paper-style settings above (2-D images)."""
    return float(structural_similarity(np.asarray(reference, np.float64), np.asarray(image, np.float64),
                                       data_range=data_range, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def psnr(image: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)`` (2-D images)."""
    return float(peak_signal_noise_ratio(np.asarray(reference, np.float64), np.asarray(image, np.float64),
                                         data_range=data_range))


def region_rmse(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """RMSE over the pixels of ``mask``; 0 where the mask is empty (no error there)."""
    return float(np.sqrt(np.mean((image[mask] - reference[mask]) ** 2))) if mask.any() else 0.0

"""How spectral CT results are shown in evaluate / report: the mean of the energy bins in HU.

Each stored channel is one bin's "HU" (water 0 in every bin, :mod:`tomoconsensus.spectral.modality`);
their mean is a conventional-CT-like image, shown and measured in the paper's CT window
[-160, 240] HU. Material images, the 70 keV virtual monoenergetic image and iodine ROI means need the
bin attenuation matrix of the prepared file: :mod:`tomoconsensus.spectral.analysis`.
"""

from __future__ import annotations

import numpy as np

from tomoconsensus.metrics import CT_WINDOW_HU, ct_metrics


class SpectralPresentation:
    """Display, metrics and labels of spectral slices (bins, H, W) in bin HU/1000."""

    report_rows = (("rmse_hu", "RMSE, bin mean (HU)", 1.0), ("ssim", "SSIM, bin mean (%)", 100.0),
                   ("psnr_db", "PSNR (dB)", 1.0), ("roi_std", "ROI std, bin mean (HU)", 1.0))
    unit_label = "HU (mean of the energy bins)"
    error_key = "rmse_hu"

    @staticmethod
    def baseline_names(attrs: dict) -> dict[str, str]:
        return {"x_est": "FBP per bin"}

    @staticmethod
    def display(image: np.ndarray) -> np.ndarray:
        """(bins, H, W) bin HU/1000 -> (H, W) mean of the bins in HU."""
        return 1000.0 * np.asarray(image).mean(axis=0)

    @staticmethod
    def display_window(reference_2d: np.ndarray) -> tuple[float, float]:
        return CT_WINDOW_HU

    @staticmethod
    def difference_range(window: tuple[float, float]) -> float:
        return 100.0

    @staticmethod
    def roi_value_range(reference_2d: np.ndarray) -> tuple[float, float]:
        return -100.0, 100.0

    @staticmethod
    def slice_metrics(image: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        return ct_metrics(SpectralPresentation.display(image), SpectralPresentation.display(reference))

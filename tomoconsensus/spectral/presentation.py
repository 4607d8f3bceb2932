"""How spectral CT results are shown in evaluate / report: the mean of the energy bins in HU.

Each stored channel is one bin's "HU" (water 0 in every bin, :mod:`tomoconsensus.spectral.modality`);
their mean is a conventional-CT-like image, shown and measured like CT (the paper's window
[-160, 240] HU, :class:`~tomoconsensus.tomo.presentation.HUPresentation`). Material images, the 70 keV
virtual monoenergetic image and iodine ROI means need the bin attenuation matrix of the prepared
file: :mod:`tomoconsensus.spectral.analysis`.
"""

from __future__ import annotations

import numpy as np

from tomoconsensus.tomo.presentation import HUPresentation


class SpectralPresentation(HUPresentation):
    """Display and labels of spectral slices (bins, H, W) in bin HU/1000; CT's window and metrics."""

    report_rows = (("rmse_hu", "RMSE, bin mean (HU)", 1.0), ("ssim", "SSIM, bin mean (%)", 100.0),
                   ("psnr_db", "PSNR (dB)", 1.0), ("roi_std", "ROI std, bin mean (HU)", 1.0))
    unit_label = "HU (mean of the energy bins)"

    @staticmethod
    def baseline_names(attrs: dict) -> dict[str, str]:
        return {"x_est": "FBP per bin"}

    @staticmethod
    def display(image: np.ndarray) -> np.ndarray:
        """(bins, H, W) bin HU/1000 -> (H, W) mean of the bins in HU."""
        return 1000.0 * np.asarray(image).mean(axis=0)

    @staticmethod
    def calibration_mask(x_est: np.ndarray) -> np.ndarray:
        """Every pixel of every bin (the uncertainty map's calibration has not been measured per bin)."""
        return np.ones(np.shape(x_est), dtype=bool)

"""How MR results are shown and measured: magnitude images, RMSE in 1e-3 of the [-1, 1] scaling.

Light on purpose (NumPy and scikit-image only): ``evaluate`` and ``report`` load it without torch
or SigPy. Every modality supplies the same attributes (see :func:`tomoconsensus.metrics.presenter`).
"""

from __future__ import annotations

import numpy as np

from tomoconsensus.metrics import Presentation, magnitude, mr_metrics


class MRPresentation(Presentation):
    """Display, metrics and labels of MR slices (prepared units: (real, imaginary), 2 channels)."""

    report_rows = (("rmse_1e-3", "RMSE (1e-3)", 1.0), ("ssim", "SSIM (%)", 100.0), ("psnr_db", "PSNR (dB)", 1.0),
                   ("roi_std", "ROI std (1e-3)", 1e3))
    unit_label = "a.u."
    error_key = "rmse_1e-3"

    @staticmethod
    def baseline_names(attrs: dict) -> dict[str, str]:
        return {"x_est": "SENSE", "zero_filled": "Zero-filling"}

    @staticmethod
    def display(image: np.ndarray) -> np.ndarray:
        return magnitude(image)

    @staticmethod
    def roi_value_range(reference_2d: np.ndarray) -> tuple[float, float]:
        """Tissue rather than background, whose flat std is noise only."""
        return 0.25 * float(reference_2d.max()), np.inf

    @staticmethod
    def slice_metrics(image: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        return mr_metrics(image, reference)

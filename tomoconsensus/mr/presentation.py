"""How MR results are shown and measured: magnitude images, RMSE in 1e-3 of the [-1, 1] scaling.

Magnitude images of the complex (real, imaginary) channels; RMSE in the data units times 1e3 (the
paper quotes 1e-3 of the [-1, 1] scaling); SSIM and PSNR with ``data_range`` = the reference
magnitude's range (settings of :func:`tomoconsensus.metrics.ssim`).

Light on purpose (NumPy and scikit-image only): ``evaluate`` and ``report`` load it without torch
or SigPy. Every modality supplies the same attributes (see :class:`tomoconsensus.metrics.Presentation`).
"""

from __future__ import annotations

import numpy as np

from tomoconsensus.metrics import Presentation, psnr, rmse, ssim


def magnitude(image: np.ndarray) -> np.ndarray:
    """(2, H, W) real/imaginary -> (H, W) magnitude; (1, H, W) -> (H, W); (H, W) unchanged."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] == 2:
        return np.hypot(image[0], image[1])
    return image[0] if image.ndim == 3 else image


def mr_metrics(image: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """RMSE (1e-3 units) and SSIM of the magnitude images of one MR slice (2, H, W)."""
    a, b = magnitude(image), magnitude(reference)
    span = float(b.max() - b.min()) or 1.0
    return {"rmse_1e-3": 1e3 * rmse(a, b), "ssim": ssim(a, b, span), "psnr_db": psnr(a, b, span)}


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

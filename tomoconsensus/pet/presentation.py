"""How PET results are shown and measured: activity units, windows, table rows.

Light on purpose (NumPy and scikit-image only): ``evaluate`` and ``report`` load it without torch or
astra. :class:`~tomoconsensus.pet.modality.PETModality` inherits it.
"""

from __future__ import annotations

import numpy as np

from tomoconsensus.metrics import Presentation, psnr, rmse, ssim


class PETPresentation(Presentation):
    """Display, metrics and labels of PET slices: images (1, H, W) in activity units."""

    #: Table rows of the report: (metric key, label, scale).
    report_rows = (("rmse", "RMSE (0.01 activity units)", 100.0), ("ssim", "SSIM (%)", 100.0),
                   ("psnr_db", "PSNR (dB)", 1.0), ("roi_std", "ROI std (0.01 activity units)", 100.0))
    unit_label = "activity"
    error_key = "rmse"

    @staticmethod
    def baseline_names(attrs: dict) -> dict[str, str]:
        """Display names of x_est and the stored baselines."""
        return {"x_est": f"{str(attrs.get('recon', 'fbp')).upper()} (all counts)"}

    @staticmethod
    def display(image: np.ndarray) -> np.ndarray:
        return np.asarray(image)[0]

    @staticmethod
    def display_window(reference_2d: np.ndarray) -> tuple[float, float]:
        """0 to the 99.9th percentile of the reference (lesions near the top of the scale)."""
        return 0.0, float(np.percentile(reference_2d, 99.9)) or 1.0

    difference_range = staticmethod(Presentation.difference_range)

    @staticmethod
    def roi_value_range(reference_2d: np.ndarray) -> tuple[float, float]:
        """Background: within 30 % of the median of the body (pixels above 10 % of the maximum)."""
        body = reference_2d[reference_2d > 0.1 * reference_2d.max()]
        median = float(np.median(body)) if body.size else 0.0
        return 0.7 * median, 1.3 * median

    @staticmethod
    def slice_metrics(image: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        """RMSE (activity units), SSIM and PSNR with data range = reference range, of (1, H, W) slices."""
        a, b = np.asarray(image, np.float64)[0], np.asarray(reference, np.float64)[0]
        span = float(b.max() - b.min()) or 1.0
        return {"rmse": rmse(a, b), "ssim": ssim(a, b, span), "psnr_db": psnr(a, b, span)}

"""How ``evaluate`` and the report show counting data: events per second, its own labels and baseline.

Light (NumPy only, and tomoconsensus.metrics): ``evaluate`` loads it without torch.
"""

from __future__ import annotations

import numpy as np

from tomoconsensus.metrics import Presentation, rmse, ssim
from toy_counting.modality import UNIT_SCALE


class CountingPresentation(Presentation):
    """Display, metrics and labels of counting slices (1, H, W) in events per second / 10."""

    report_rows = (("rmse", "RMSE (events/s)", 1.0), ("ssim", "SSIM (%)", 100.0),
                   ("roi_std", "ROI std (events/s)", 1.0))
    unit_label = "events/s"
    error_key = "rmse"

    @staticmethod
    def baseline_names(attrs: dict) -> dict[str, str]:
        return {"x_est": "All counts"}

    @staticmethod
    def display(image: np.ndarray) -> np.ndarray:
        """(1, H, W) events per second / 10 -> (H, W) events per second."""
        return UNIT_SCALE * np.asarray(image)[0]

    @staticmethod
    def roi_value_range(reference_2d: np.ndarray) -> tuple[float, float]:
        return 0.5 * float(reference_2d.max()), np.inf

    @classmethod
    def slice_metrics(cls, image: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        a, b = cls.display(image), cls.display(reference)
        return {"rmse": rmse(a, b), "ssim": ssim(a, b, float(b.max() - b.min()) or 1.0)}

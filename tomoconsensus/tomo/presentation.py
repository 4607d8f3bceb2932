"""How attenuation images in HU are shown and measured (CT, spectral CT): the paper's [-160, 240] HU window.

Light on purpose (NumPy and scikit-image only): ``evaluate`` and ``report`` load it without torch.
A modality's presentation subclasses :class:`HUPresentation` and changes what differs (labels, how a
stored image becomes the displayed HU image); every modality supplies the same attributes (see
:func:`tomoconsensus.presenters.presenter`).
"""

from __future__ import annotations

import numpy as np

from tomoconsensus.metrics import psnr, region_rmse, rmse, ssim

#: The paper's display window (HU); SSIM and PSNR are computed inside it.
HU_WINDOW = (-160.0, 240.0)
#: Reference values above this are the body; at or below it, air (HU).
BODY_THRESHOLD_HU = -500.0


def windowed(image_hu: np.ndarray, window=HU_WINDOW) -> np.ndarray:
    """The image clipped to ``window`` (HU)."""
    return np.clip(image_hu, *window)


def hu_metrics(image_hu: np.ndarray, reference_hu: np.ndarray, window=HU_WINDOW) -> dict[str, float]:
    """RMSE (HU, full range; also inside the body and in the air, split at the reference's -500 HU), SSIM
    and PSNR (within ``window``) of one attenuation slice (H, W) in HU. A denoiser can do well in the body
    and add streaks in the air (or the reverse): the whole-slice RMSE alone hides which."""
    span = window[1] - window[0]
    a, b = windowed(image_hu, window), windowed(reference_hu, window)
    body = np.asarray(reference_hu) > BODY_THRESHOLD_HU
    return {"rmse_hu": rmse(image_hu, reference_hu), "rmse_body_hu": region_rmse(image_hu, reference_hu, body),
            "rmse_air_hu": region_rmse(image_hu, reference_hu, ~body), "ssim": ssim(a, b, span),
            "psnr_db": psnr(a, b, span)}


class HUPresentation:
    """Display, metrics and labels of slices stored in HU/1000 with one channel."""

    #: (metric key, row label, scale) of the Markdown table
    report_rows = (("rmse_hu", "RMSE (HU)", 1.0), ("rmse_body_hu", "RMSE body (HU)", 1.0),
                   ("rmse_air_hu", "RMSE air (HU)", 1.0), ("ssim", "SSIM (%)", 100.0), ("psnr_db", "PSNR (dB)", 1.0),
                   ("roi_std", "ROI std (HU)", 1.0))
    unit_label = "HU"
    error_key = "rmse_hu"
    #: Recorded in metrics.json.
    settings = {"hu_window": list(HU_WINDOW)}

    @staticmethod
    def baseline_names(attrs: dict) -> dict[str, str]:
        return {"x_est": "FBP", "tv": "TV"}

    @staticmethod
    def display(image: np.ndarray) -> np.ndarray:
        """(1, H, W) HU/1000 -> (H, W) HU."""
        return 1000.0 * np.asarray(image)[0]

    @staticmethod
    def display_window(reference_2d: np.ndarray) -> tuple[float, float]:
        return HU_WINDOW

    @staticmethod
    def difference_range(window: tuple[float, float]) -> float:
        return 100.0

    @staticmethod
    def roi_value_range(reference_2d: np.ndarray) -> tuple[float, float]:
        """Soft tissue."""
        return -100.0, 100.0

    @staticmethod
    def calibration_mask(x_est: np.ndarray) -> np.ndarray:
        """Inside the body: x_est above :data:`BODY_THRESHOLD_HU` (prepared units HU/1000)."""
        return 1000.0 * np.asarray(x_est) > BODY_THRESHOLD_HU

    @classmethod
    def slice_metrics(cls, image: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        """RMSE (HU), SSIM and PSNR in the paper's window, of the displayed images."""
        return hu_metrics(cls.display(image), cls.display(reference))

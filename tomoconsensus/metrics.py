"""Image-quality metrics as in the paper's Tables 1 and 2 (settings documented in docs/metrics.md).

* CT: images in HU. RMSE over the whole image, in HU. SSIM and PSNR inside the display window
  [-160, 240] HU: both images clipped to the window, ``data_range = 400`` HU.
* MR: magnitude images of the complex (real, imaginary) channels; RMSE in the data units (the
  paper quotes 1e-3 of the [-1, 1] scaling), SSIM with ``data_range`` = reference magnitude range.
* SSIM: scikit-image ``structural_similarity`` with a Gaussian window (sigma = 1.5), no sample
  covariance correction (Wang et al. 2004's settings), K1 = 0.01, K2 = 0.03.
"""

from __future__ import annotations

import importlib

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

CT_WINDOW_HU = (-160.0, 240.0)

#: Where each modality's presentation lives ("module:Class"): display units and window, metrics,
#: table rows and baseline names (``report_rows``, ``unit_label``, ``error_key``, ``baseline_names``,
#: ``display``, ``display_window``, ``difference_range``, ``roi_value_range``, ``slice_metrics``).
#: A new modality adds itself with :func:`register_presenter`; nothing downstream branches on names.
PRESENTERS = {"ct": "tomoconsensus.ct.presentation:CTPresentation",
              "mr": "tomoconsensus.mr.presentation:MRPresentation",
              "pet": "tomoconsensus.pet.presentation:PETPresentation",
              "spectral": "tomoconsensus.spectral.presentation:SpectralPresentation"}


class Presentation:
    """Defaults for a modality whose display images are non-negative (MR magnitude, activity, counts):
    window 0 to the reference's maximum, differences shown within 20 % of it. Subclasses set
    ``report_rows``, ``unit_label``, ``error_key`` and the remaining methods."""

    @staticmethod
    def display_window(reference_2d: np.ndarray) -> tuple[float, float]:
        return 0.0, float(reference_2d.max())

    @staticmethod
    def difference_range(window: tuple[float, float]) -> float:
        return 0.2 * window[1]


def register_presenter(modality: str, target: str | type) -> None:
    """Make ``modality`` (the prepared file's ``modality`` attribute) known to evaluate and report.

    ``target`` is the presentation class or its ``"module:Class"`` path (imported when first used).
    """
    PRESENTERS[modality] = target


def presenter(modality: str):
    """The presentation class of ``modality``; InputError for a modality nobody registered."""
    target = PRESENTERS.get(modality)
    if target is None:
        from tomoconsensus.errors import InputError

        raise InputError("modality", modality, f"one of {', '.join(PRESENTERS)} (or register_presenter)", modality)
    if isinstance(target, str):
        module, name = target.split(":")
        target = getattr(importlib.import_module(module), name)
    return target


def rmse(image: np.ndarray, reference: np.ndarray) -> float:
    """Root mean squared error over all pixels."""
    return float(np.sqrt(np.mean((np.asarray(image, np.float64) - np.asarray(reference, np.float64)) ** 2)))


def ssim(image: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """SSIM with the paper-style settings above (2-D images)."""
    return float(structural_similarity(np.asarray(reference, np.float64), np.asarray(image, np.float64),
                                       data_range=data_range, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def windowed(image_hu: np.ndarray, window=CT_WINDOW_HU) -> np.ndarray:
    return np.clip(image_hu, *window)


#: Reference values above this are the body; at or below it, air (HU).
BODY_THRESHOLD_HU = -500.0


def region_rmse(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """RMSE over the pixels of ``mask``; 0 where the mask is empty (no error there)."""
    return float(np.sqrt(np.mean((image[mask] - reference[mask]) ** 2))) if mask.any() else 0.0


def ct_metrics(image_hu: np.ndarray, reference_hu: np.ndarray, window=CT_WINDOW_HU) -> dict[str, float]:
    """RMSE (HU, full range; also inside the body and in the air, split at the reference's -500 HU), SSIM
    and PSNR (within ``window``) of one CT slice (H, W). A denoiser can do well in the body and add streaks
    in the air (or the reverse): the whole-slice RMSE alone hides which."""
    span = window[1] - window[0]
    a, b = windowed(image_hu, window), windowed(reference_hu, window)
    body = np.asarray(reference_hu) > BODY_THRESHOLD_HU
    return {"rmse_hu": rmse(image_hu, reference_hu), "rmse_body_hu": region_rmse(image_hu, reference_hu, body),
            "rmse_air_hu": region_rmse(image_hu, reference_hu, ~body), "ssim": ssim(a, b, span),
            "psnr_db": float(peak_signal_noise_ratio(b, a, data_range=span))}


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
    return {"rmse_1e-3": 1e3 * rmse(a, b), "ssim": ssim(a, b, span),
            "psnr_db": float(peak_signal_noise_ratio(b, a, data_range=span))}


def slice_metrics(modality: str, image: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Metrics of one slice (C, H, W) in prepared-file units, as the modality defines them."""
    return presenter(modality).slice_metrics(image, reference)

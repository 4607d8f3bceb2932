"""Per-pixel uncertainty from the two networks' disagreement, calibrated on held-out noisy data.

The halves ``x1``, ``x2`` carry independent noise. A run's two half outputs ``h1 = F1(x1)``,
``h2 = F2(x2)`` (consensus: ``f1(x1)``, ``f2(x2)``; one-network runs: ``f(x1)``, ``f(x2)``) disagree by
``d = (h1 - h2) / 2``; the raw map is its local RMS,

    sigma_raw = sqrt( G_s * d^2 )          (G_s: Gaussian of ``SMOOTH_PX`` pixels; data units)

With linearised networks ``var d = var F(x_half) / 2``, which is also the noise variance of the output
on the full data ``y = F((x1 + x2)/2)`` (half the input variance), so ``sigma_raw`` estimates the
noise part of y's error. The bias part is not seen by ``d``; a scale ``k`` absorbs it, chosen on
held-out *noisy* data without any clean image: for the half output ``y1 = Fbar(x1)`` (the networks'
mean on x1), ``(y1 - x2)^2 - (x1 - x2)^2 / 2`` is an unbiased estimate of ``(y1 - truth)^2`` per pixel
(x2's noise is independent of y1; ``(x1 - x2)^2 / 2`` estimates x2's noise variance), and
``var d`` is half y1's noise variance, so

    k^2 = sum_body [(y1 - x2)^2 - (x1 - x2)^2 / 2] / sum_body 2 sigma_raw^2.

The calibrated map ``k sigma_raw`` is then checked against a clean reference where one exists:
coverage of ``|y - ref| <= k sigma`` (68.3 % and 95.4 % for +-1 and +-2 sigma if the error were
Gaussian with that sigma), the ratio of actual to predicted mean squared error, and the correlation
of predicted and actual RMS error over blocks of ``BLOCK_PX`` x ``BLOCK_PX`` pixels.
For FBP (F the identity) the same construction gives ``d = (x1 - x2)/2``, exactly x_est's noise.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from tomoconsensus import methods

SMOOTH_PX = 1.5
BLOCK_PX = 8


def raw_sigma(h1: np.ndarray, h2: np.ndarray, smooth_px: float = SMOOTH_PX) -> np.ndarray:
    """Local RMS of the half outputs' disagreement (..., H, W) -> same shape, data units."""
    d2 = ((np.asarray(h1, np.float64) - np.asarray(h2, np.float64)) / 2) ** 2
    sig = [0.0] * (d2.ndim - 2) + [smooth_px, smooth_px]
    return np.sqrt(gaussian_filter(d2, sig, mode="nearest")).astype(np.float32)


@torch.no_grad()
def half_outputs(method: str, models: Mapping[str, torch.nn.Module], x1: np.ndarray, x2: np.ndarray,
                 device: torch.device, batch_size: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(h1, h2, y1)``: each half's output (:func:`tomoconsensus.methods.half_outputs`) and the networks'
    mean on x1 alone (the calibration's ``y1``); (slices, C, H, W) float32, data units."""
    outs: list[list[np.ndarray]] = [[], [], []]
    nets = [models[k] for k in methods.NETWORKS[method]]
    for s in range(0, len(x1), batch_size):
        a = torch.from_numpy(np.ascontiguousarray(x1[s:s + batch_size])).to(device)
        b = torch.from_numpy(np.ascontiguousarray(x2[s:s + batch_size])).to(device)
        h1, h2 = methods.half_outputs(method, models, a, b)
        y1 = h1 if len(nets) == 1 else sum(net(a) for net in nets) / len(nets)
        for store, t in zip(outs, (h1, h2, y1), strict=True):
            store.append(t.float().cpu().numpy())
    h1, h2, y1 = (np.concatenate(o).astype(np.float32) for o in outs)
    return h1, h2, y1


def body_mask(x_est: np.ndarray, modality: str) -> np.ndarray:
    """Pixels used for calibration, as the modality's presentation defines them (``calibration_mask``:
    HU images inside the body, x_est > -500 HU; by default every pixel)."""
    from tomoconsensus.presenters import presenter

    return np.asarray(presenter(modality).calibration_mask(np.asarray(x_est)), dtype=bool)


def calibration_scale(y1: np.ndarray, x1: np.ndarray, x2: np.ndarray, sigma_raw: np.ndarray,
                      mask: np.ndarray) -> float:
    """The scale ``k`` of the module docstring, from noisy held-out data only."""
    y1, x1, x2 = (np.asarray(a, np.float64) for a in (y1, x1, x2))
    proxy = (y1 - x2) ** 2 - (x1 - x2) ** 2 / 2
    predicted = 2 * np.asarray(sigma_raw, np.float64) ** 2
    return float(np.sqrt(max(proxy[mask].sum(), 0.0) / predicted[mask].sum()))


def block_rms(a: np.ndarray, mask: np.ndarray, block: int = BLOCK_PX) -> np.ndarray:
    """RMS of ``a`` over the ``block x block`` tiles of images (..., H, W) that lie fully inside ``mask``."""
    h, w = a.shape[-2:]
    hb, wb = h // block, w // block
    shape = a.shape[:-2] + (hb, block, wb, block)
    tiles = (np.asarray(a, np.float64)[..., :hb * block, :wb * block] ** 2).reshape(shape).mean(axis=(-3, -1))
    full = mask[..., :hb * block, :wb * block].reshape(shape).all(axis=(-3, -1))
    return np.sqrt(tiles[full])


def check_calibration(y: np.ndarray, reference: np.ndarray, sigma: np.ndarray, mask: np.ndarray,
                      scale_to_hu: float = 1.0) -> dict[str, float]:
    """How well ``sigma`` (already calibrated) predicts the actual error ``y - reference`` inside ``mask``.

    Returns coverage of +-1 and +-2 sigma, actual / predicted mean squared error, the Pearson
    correlation of predicted and actual RMS error over blocks, and both RMS values in HU
    (``scale_to_hu``: 1000 for CT in HU/1000).
    """
    err = np.abs(np.asarray(y, np.float64) - np.asarray(reference, np.float64))
    sig = np.asarray(sigma, np.float64)
    e, s = err[mask], sig[mask]
    pred_blocks, err_blocks = block_rms(sig, mask), block_rms(err, mask)
    corr = float(np.corrcoef(pred_blocks, err_blocks)[0, 1]) if len(err_blocks) > 2 else float("nan")
    return {"coverage_1sigma": float((e <= s).mean()), "coverage_2sigma": float((e <= 2 * s).mean()),
            "mse_ratio_actual_over_predicted": float((e**2).mean() / (s**2).mean()),
            "block_correlation": corr, "blocks": int(len(err_blocks)),
            "rms_error_hu": float(np.sqrt((e**2).mean()) * scale_to_hu),
            "rms_predicted_hu": float(np.sqrt((s**2).mean()) * scale_to_hu)}


def uncertainty_for(method: str, models: Mapping[str, torch.nn.Module], data, device: torch.device,
                    batch_size: int = 4, val=None) -> tuple[np.ndarray, dict]:
    """``denoise --uncertainty``: the map ``k sigma_raw`` for every slice of ``data`` (slices, C, H, W), data units,
    and the attributes to store with it; ``k`` is calibrated on the held-out prepared dataset ``val`` (noisy data
    only), else 1 (attribute ``uncertainty_calibrated_on`` empty)."""
    h1, h2, _ = half_outputs(method, models, data.x1, data.x2, device, batch_size)
    k, source = 1.0, ""
    if val is not None:
        v1, v2, y1 = half_outputs(method, models, val.x1, val.x2, device, batch_size)
        k = calibration_scale(y1, val.x1, val.x2, raw_sigma(v1, v2), body_mask(val.x_est, val.modality))
        source = str(val.path)
    attrs = {"uncertainty_scale": k, "uncertainty_calibrated_on": source, "uncertainty_smooth_px": SMOOTH_PX,
             "uncertainty_definition": "k * sqrt(G * ((h1 - h2)/2)^2), h = each half's network output "
             "(tomoconsensus.iq.uncertainty)"}
    return (k * raw_sigma(h1, h2)).astype(np.float32), attrs

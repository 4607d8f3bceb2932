"""Validation on held-out slices and model selection at the end of each epoch.

The selection criterion is the method's self-supervised data term on held-out x1, x2 (``val_<method>``,
no reference needed; with ``selection = "output_on_halves"`` the held-out error of the deployed
operator, ``val_output_on_halves``): for consensus and Noise2Noise either is, up to a constant, an
unbiased estimate of an error against the clean image. The networks of the epoch with its lowest value are kept in
``best.pt`` (``model.pt`` at the end, :func:`tomoconsensus.learn.checkpoints.finish_run`). Reference
metrics (RMSE, SSIM where the file has a clean reference) are logged, never used to select.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from tomoconsensus import methods, registry
from tomoconsensus.data.prepared import PreparedDataset
from tomoconsensus.learn.checkpoints import save_model
from tomoconsensus.learn.config import TrainConfig
from tomoconsensus.learn.config import selection_key as config_selection_key
from tomoconsensus.learn.state import LoopState
from tomoconsensus.learn.trained import autocast_for
from tomoconsensus.presenters import slice_metrics


@torch.no_grad()
def validate(config: TrainConfig, models: Mapping[str, torch.nn.Module], data: PreparedDataset,
             device: torch.device, batch: int = 4) -> dict[str, float]:
    """Loss terms on full held-out slices, plus RMSE/SSIM of the output where a reference exists."""
    for m in models.values():
        m.eval()
    sums: dict[str, float] = {}
    per_slice: list[dict[str, float]] = []
    for start in range(0, len(data), batch):
        sl = slice(start, start + batch)
        tensors = {k: torch.from_numpy(getattr(data, k)[sl]).to(device) for k in ("x1", "x2", "x_est")}
        for key in ("reference", "teacher"):
            if getattr(data, key) is not None:
                tensors[key] = torch.from_numpy(getattr(data, key)[sl]).to(device)
        with autocast_for(device, config.amp):
            if methods.has_target(config.method, tensors):
                terms = methods.objective(config.method, models, tensors, config.beta_w, config.beta_r,
                                          config.symmetric_n2n)
                output_error = methods.output_on_halves_error(config.method, models, tensors["x1"], tensors["x2"])
                if output_error is not None:
                    terms = {**terms, "output_on_halves": output_error}
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(tensors["x1"])
            out = methods.output(config.method, models, tensors["x1"], tensors["x2"], tensors["x_est"],
                                 mean_from_x_est=methods.mean_is_x_est(data.attrs))
        if data.reference is not None and data.modality in registry.names():  # reference metrics: informative only
            out_np = out.float().cpu().numpy()
            per_slice += [slice_metrics(data.modality, o, r) for o, r in zip(out_np, data.reference[sl], strict=True)]
    for m in models.values():
        m.train()
    result = {f"val_{k}": v / len(data) for k, v in sums.items()}
    for key in (per_slice[0] if per_slice else {}):
        result[f"val_{key}"] = float(np.mean([s[key] for s in per_slice]))
    return result


def selection_key(config: TrainConfig) -> str:
    """The ``val`` value selection minimises: the self-supervised data term on held-out slices, or the
    held-out error of the deployed operator (``config.selection``, :func:`tomoconsensus.learn.config.selection_key`)."""
    return config_selection_key(config.method, config.selection)


def validate_and_select(loop: LoopState, val: PreparedDataset) -> None:
    """End of an epoch (rank 0): validate, log, and keep the networks in ``best.pt`` when the held-out
    self-supervised loss is the lowest so far."""
    loop.validation = validate(loop.config, loop.models, val, loop.device)
    loop.write_log("val", loop.validation)
    for name, data in loop.monitors.items():
        loop.write_log(f"monitor:{name}", validate(loop.config, loop.models, data, loop.device))
    key = selection_key(loop.config)
    if loop.config.select_best and loop.validation.get(key, math.inf) < loop.best["loss"]:
        loop.best.update(step=loop.step, loss=loop.validation[key], validation=loop.validation)
        save_model(loop.best_path, loop.step, loop.config, loop.models,
                   {"selection_loss": loop.best["loss"], "validation": loop.validation, "data": loop.record})

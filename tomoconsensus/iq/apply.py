"""Apply FBP, TV and trained runs to the phantom realisations and to held-out prepared files.

Runs are applied as ``denoise`` applies them (default variant, :func:`tomoconsensus.denoising.apply_run`),
so the images measured are those a user gets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tomoconsensus.data.prepared import PreparedDataset
from tomoconsensus.iq.measure import HU, MethodImages
from tomoconsensus.iq.simulate import Realisations


def as_prepared(r: Realisations, name: str) -> PreparedDataset:
    """Realisations as an in-memory prepared CT dataset (what :func:`apply_run` reads)."""
    ids = [f"{name}_{i}" for i in range(len(r.x1))]
    return PreparedDataset(r.x1, r.x2, r.x_est, None, {}, ids, ids, {"modality": "ct", "units": "HU/1000"},
                           Path(f"<iq phantom {name}>"))


def baseline_images(uniform: Realisations, inserts: Realisations) -> dict[str, MethodImages]:
    """FBP (x_est; halves x1, x2) and, where reconstructed, TV, in HU."""
    out = {"FBP": MethodImages(uniform.x_est[:, 0] * HU, inserts.x_est[:, 0] * HU,
                               (inserts.x1, inserts.x2, inserts.x1))}
    if uniform.tv is not None and inserts.tv is not None:
        out["TV"] = MethodImages(uniform.tv[:, 0] * HU, inserts.tv[:, 0] * HU)
    return out


def load_run(run_dir: Path, device: str):
    """``(config, models, device)`` of a finished or interrupted run."""
    from tomoconsensus.learn.trained import load_trained, resolve_device

    dev = resolve_device(device)
    config, models = load_trained(run_dir, dev)
    return config, models, dev


def run_images(run_dir: Path, uniform: Realisations, inserts: Realisations, device: str = "auto",
               batch_size: int = 8) -> MethodImages:
    """A run's default output on both phantoms (HU), and its half outputs on the insert phantom."""
    from tomoconsensus import methods
    from tomoconsensus.denoising import apply_run, check_like_training
    from tomoconsensus.iq.uncertainty import half_outputs
    from tomoconsensus.learn.trained import load_trained, resolve_device

    dev = resolve_device(device)
    config, models, trained_on = load_trained(run_dir, dev, with_data=True)
    variant = methods.check_variant(config.method, None)
    images = []
    for r, name in ((uniform, "uniform"), (inserts, "inserts")):
        data = as_prepared(r, name)
        check_like_training(data, config.channels, trained_on)
        images.append(apply_run(config, models, data, dev, variant, batch_size, progress=False)[:, 0] * HU)
    halves = half_outputs(config.method, models, inserts.x1, inserts.x2, dev, batch_size)
    return MethodImages(images[0], images[1], halves)


def prepared_outputs(run_dir: Path | None, data: PreparedDataset, device: str = "auto", batch_size: int = 8
                     ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(y, (h1, h2, y1))`` on a prepared file (HU/1000): the run's default output and half outputs;
    ``run_dir=None`` is FBP (``y = x_est``, ``h1 = y1 = x1``, ``h2 = x2``)."""
    if run_dir is None:
        return data.x_est, (data.x1, data.x2, data.x1)
    from tomoconsensus import methods
    from tomoconsensus.denoising import apply_run
    from tomoconsensus.iq.uncertainty import half_outputs

    config, models, dev = load_run(run_dir, device)
    y = apply_run(config, models, data, dev, methods.check_variant(config.method, None), batch_size, progress=False)
    return y, half_outputs(config.method, models, data.x1, data.x2, dev, batch_size)

"""A complete new modality as a plugin: photon/event counting (PET-like, photon-counting CT).

The modality lives in the package ``toy_counting/`` next to this script (modality, presentation,
``prepare counting`` arguments, plugin); its ``pyproject.toml`` declares the entry point
``tomoconsensus.modalities: counting = toy_counting.plugin:PLUGIN``, so after
``pip install examples/toy_modality`` the commands ``tomoconsensus prepare counting``, ``evaluate`` and
the report know it in every new process, with no edit to tomoconsensus. This walkthrough runs
without installing: it registers the plugin in its own process (:func:`tomoconsensus.registry.register`).

Run:  .venv/bin/python examples/toy_modality/walkthrough.py
It checks unbiasedness and independence of the halves on 200 splits, prepares a small dataset,
trains a consensus network for a few steps with the normal trainer, and evaluates it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from skimage.data import shepp_logan_phantom
from skimage.transform import resize
from toy_counting.modality import UNIT_SCALE, CountingModality
from toy_counting.plugin import PLUGIN

from tomoconsensus import registry
from tomoconsensus.data.prepared import write_prepared
from tomoconsensus.denoising import denoise
from tomoconsensus.evaluation import evaluate
from tomoconsensus.learn.config import TrainConfig
from tomoconsensus.learn.loop import train
from tomoconsensus.modality import Slice, split_and_reconstruct
from tomoconsensus.report import metrics_markdown


def main() -> None:
    registry.register(PLUGIN)  # what the installed entry point does for every process
    rng = np.random.default_rng(0)
    activity = 10.0 * resize(shepp_logan_phantom(), (64, 64)) + 0.5  # events per second
    modality = CountingModality(scan_time_s=20.0)

    # Physics check: mean of x1 over many splits -> activity; halves uncorrelated.
    draws = [split_and_reconstruct(modality, rng.poisson(modality.scan_time_s * activity), rng) for _ in range(200)]
    x1 = np.stack([d.x1[0] for d in draws]) * UNIT_SCALE
    x2 = np.stack([d.x2[0] for d in draws]) * UNIT_SCALE
    bias = np.abs(x1.mean(0) - activity).mean() / activity.mean()
    n1, n2 = x1 - x1.mean(0), x2 - x2.mean(0)
    rho = (n1 * n2).sum() / np.sqrt((n1**2).sum() * (n2**2).sum())
    print(f"mean |bias| of x1 over 200 splits: {100 * bias:.2f} % of the mean activity; corr(x1, x2 noise) = {rho:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "counting.h5"
        slices = (Slice(f"s{i}", f"p{i % 3}", rng.poisson(modality.scan_time_s * np.roll(activity, 3 * i, axis=1)),
                        (activity / UNIT_SCALE)[None].astype(np.float32)) for i in range(6))
        print(write_prepared(path, modality, slices, 6, seed=0, progress=False))
        config = TrainConfig(method="consensus", base_features=8, depth=2, patch_size=32, batch_size=8,
                             patches_per_slice=8, epochs=2, learning_rate=1e-3, device="cpu")
        print(train(config, path, Path(tmp) / "run", progress=False))
        denoised = Path(tmp) / "denoised.h5"
        print(denoise(Path(tmp) / "run", path, denoised, device="cpu", progress=False))
        print(metrics_markdown(evaluate(path, {"Consensus": denoised})))


if __name__ == "__main__":
    main()

"""A complete new modality in one file: photon/event counting (PET-like, photon-counting CT).

Measurement: counts N ~ Poisson(t * lambda) per pixel, for an activity image lambda and a scan
time t. Split: every event is given to half 1 or half 2 with probability 1/2 (binomial thinning);
the halves are then *independent* Poisson(t lambda / 2) images. Reconstruction of a half:
2 N_half / t, linear and unbiased for lambda. x_est: N / t.

Run:  .venv/bin/python examples/toy_modality.py
It prepares a small dataset, checks unbiasedness and independence of the halves on 200 splits,
and trains a consensus network for a few steps with the normal trainer.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from tomoconsensus.data.prepared import write_prepared
from tomoconsensus.denoise import denoise
from tomoconsensus.evaluate import evaluate
from tomoconsensus.learn.config import TrainConfig
from tomoconsensus.learn.loop import train
from tomoconsensus.metrics import Presentation, register_presenter, rmse, ssim
from tomoconsensus.modality import Slice, split_and_reconstruct
from tomoconsensus.report import metrics_markdown


class CountingModality:
    """Poisson counting data split by binomial thinning (implements ``tomoconsensus.modality.Modality``)."""

    name = "counting"
    channels = 1
    units = "events per second / 10"

    def __init__(self, scan_time_s: float):
        self.scan_time_s = scan_time_s

    def split(self, counts: np.ndarray, rng: np.random.Generator):
        half1 = rng.binomial(counts, 0.5)
        return half1, counts - half1

    def reconstruct(self, half: np.ndarray) -> np.ndarray:
        return (2.0 * half / self.scan_time_s / 10.0)[None].astype(np.float32)

    def estimate(self, counts: np.ndarray) -> np.ndarray:
        return (counts / self.scan_time_s / 10.0)[None].astype(np.float32)

    def attributes(self) -> dict:
        return {"scan_time_s": self.scan_time_s, "split": "binomial thinning, p = 1/2"}


class CountingPresentation(Presentation):
    """How evaluate/report show this modality: events per second, its own labels and baselines."""

    report_rows = (("rmse", "RMSE (events/s)", 1.0), ("ssim", "SSIM (%)", 100.0),
                   ("roi_std", "ROI std (events/s)", 1.0))
    unit_label = "events/s"
    error_key = "rmse"

    @staticmethod
    def baseline_names(attrs: dict) -> dict[str, str]:
        return {"x_est": "All counts"}

    @staticmethod
    def display(image: np.ndarray) -> np.ndarray:
        return 10.0 * np.asarray(image)[0]  # prepared units are events per second / 10

    @staticmethod
    def roi_value_range(reference_2d: np.ndarray) -> tuple[float, float]:
        return 0.5 * float(reference_2d.max()), np.inf

    @classmethod
    def slice_metrics(cls, image: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        a, b = cls.display(image), cls.display(reference)
        return {"rmse": rmse(a, b), "ssim": ssim(a, b, float(b.max() - b.min()) or 1.0)}


register_presenter(CountingModality.name, CountingPresentation)


def main() -> None:
    rng = np.random.default_rng(0)
    activity = 10.0 * resize(shepp_logan_phantom(), (64, 64)) + 0.5  # events per second
    modality = CountingModality(scan_time_s=20.0)

    # Physics check: mean of x1 over many splits -> activity; halves uncorrelated.
    draws = [split_and_reconstruct(modality, rng.poisson(modality.scan_time_s * activity), rng) for _ in range(200)]
    x1 = np.stack([d.x1[0] for d in draws]) * 10
    x2 = np.stack([d.x2[0] for d in draws]) * 10
    bias = np.abs(x1.mean(0) - activity).mean() / activity.mean()
    n1, n2 = x1 - x1.mean(0), x2 - x2.mean(0)
    rho = (n1 * n2).sum() / np.sqrt((n1**2).sum() * (n2**2).sum())
    print(f"mean |bias| of x1 over 200 splits: {100 * bias:.2f} % of the mean activity; corr(x1, x2 noise) = {rho:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "counting.h5"
        slices = (Slice(f"s{i}", f"p{i % 3}", rng.poisson(modality.scan_time_s * np.roll(activity, 3 * i, axis=1)),
                        (activity / 10.0)[None].astype(np.float32)) for i in range(6))
        print(write_prepared(path, modality, slices, 6, seed=0, progress=False))
        config = TrainConfig(method="consensus", base_features=8, depth=2, patch_size=32, batch_size=8,
                             patches_per_slice=8, epochs=2, learning_rate=1e-3, device="cpu")
        print(train(config, path, Path(tmp) / "run", progress=False))
        denoised = Path(tmp) / "denoised.h5"
        print(denoise(Path(tmp) / "run", path, denoised, device="cpu", progress=False))
        print(metrics_markdown(evaluate(path, {"Consensus": denoised})))


if __name__ == "__main__":
    main()

"""MR demo (issue 14): candidate consensus trainings and outputs, chosen on held-out noisy lines only.

The MR demo's files (same seeds) are prepared once; each candidate trains consensus with the demo
protocol changed in one place (beta_r, learning rate or schedule, epochs, width, tied networks).
Every training is then scored **without a reference** on the validation file by the criterion the
demo's data consistency already computes (:func:`tomoconsensus.data_consistency.choose_lamda`): the
solution from one half's lines, with the networks' output from that half's data only, predicts the
other half's outer lines; the minimum over lambda of the summed squared error (both directions, all
validation slices) is the candidate's score. The output variants get the same criterion with
their own one-half analogue as prior:

* ``z``: f_k(x_k) (the demo's choice of lambda);
* ``mean``: (f1(x_k) + f2(x_k)) / 2 (both networks on one input, as (f1 + f2)(m) / 2 on m = (x1 + x2) / 2);
* ``full``: (f1 + f2)(SENSE of half k's lines) / 2 (the networks applied to SENSE).

Only afterwards are the test patients measured (RMSE / SSIM of the magnitude against the reference):
each variant with data consistency at its own chosen lambda, and the network output without it.

Results: benchmarks/results/mr_ssim_candidates.json (one record per candidate, written as they finish).
Run: PYTHONPATH=.:benchmarks nice -n 5 .venv/bin/python benchmarks/mr_ssim_candidates.py --candidates base beta_r20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.data_consistency import LAMDAS, apply_consistency, refiner
from tomoconsensus.evaluation import evaluate
from tomoconsensus.learn.loop import train
from tomoconsensus.learn.trained import load_trained
from tomoconsensus.mr.demo import prepare_mr_demo
from tomoconsensus.mr.recon import sense, to_channels
from tomoconsensus.study.runner import demo_protocol

from common import RESULTS, write_result

#: candidate -> TrainConfig values changed from the demo's (consensus run)
CANDIDATES = {
    "base": {},
    "beta_r10": {"beta_r": 10.0},
    "beta_r20": {"beta_r": 20.0},
    "beta_r50": {"beta_r": 50.0},
    "cosine": {"lr_schedule": "cosine"},
    "lr1e-3": {"learning_rate": 1e-3},
    "lr1e-3_cosine": {"learning_rate": 1e-3, "lr_schedule": "cosine"},
    "epochs30": {"epochs": 30},
    "unet24": {"base_features": 24},
    "tied": {"tie_networks": True},
}
VARIANTS = ("z", "mean", "full")
PATH = RESULTS / "mr_ssim_candidates.json"


def prepared(out: Path) -> tuple[Path, Path, Path]:
    data = out / "data"
    files = tuple(data / f"mr_{n}.h5" for n in ("train", "val", "test"))
    if not all(f.exists() for f in files):
        data.mkdir(parents=True, exist_ok=True)
        files = prepare_mr_demo(data, demo_protocol("mr"), progress=False, device="cpu")
    return files


def train_candidate(name: str, out: Path) -> tuple[Path, float]:
    train_path, val_path, _ = prepared(out)
    config = dataclasses.replace(demo_protocol("mr").training.config("cpu"), method="consensus", **CANDIDATES[name])
    run_dir, seconds = out / "runs" / name, 0.0
    if not (run_dir / "model.pt").exists():
        start = time.perf_counter()
        resume = (run_dir / "checkpoint.pt").exists()
        print(train(config, train_path, run_dir, val_path, resume=resume, progress=False,
                    overwrite=not resume and run_dir.exists()), flush=True)
        seconds = time.perf_counter() - start
    return run_dir, seconds


def half_sense(arrays: dict, half: str, sense_lambda: float) -> np.ndarray:
    """(N, 2, H, W): SENSE of each slice's ``half`` lines, in prepared units."""
    out = [to_channels(sense(k, s, h.astype(bool), sense_lambda), float(c))
           for k, s, h, c in zip(arrays["kspace"], arrays["maps"], arrays[half], arrays["scale"], strict=True)]
    return np.stack(out).astype(np.float32)


@torch.no_grad()
def priors(variant: str, models: dict, data, arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    """(from half 1, from half 2) network outputs of ``variant``'s one-half analogue."""
    f1, f2 = models["f1"], models["f2"]
    both = lambda x: 0.5 * (f1(x) + f2(x))  # noqa: E731
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
    if variant == "z":
        p = f1(t(data.x1)), f2(t(data.x2))
    elif variant == "mean":
        p = both(t(data.x1)), both(t(data.x2))
    else:
        lam = float(data.attrs.get("sense_lambda", 0.01))
        p = both(t(half_sense(arrays, "half1", lam))), both(t(half_sense(arrays, "half2", lam)))
    return p[0].numpy(), p[1].numpy()


def criterion(variant: str, models: dict, val) -> tuple[float, float, list[float]]:
    """(chosen lambda, its held-out error, the error per lambda) on the validation file."""
    cls, arrays = refiner(val)
    p1, p2 = priors(variant, models, val, arrays)
    total = np.zeros(len(LAMDAS))
    for i in range(len(val)):
        total += cls.heldout_error(p1[i], p2[i], {k: v[i] for k, v in arrays.items()}, LAMDAS)
    best = int(np.argmin(total))
    return float(LAMDAS[best]), float(total[best]), total.tolist()


@torch.no_grad()
def outputs(variant: str, models: dict, data) -> np.ndarray:
    f1, f2 = models["f1"], models["f2"]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
    if variant == "z":
        return (0.5 * (f1(t(data.x1)) + f2(t(data.x2)))).numpy()
    m = t(0.5 * (data.x1 + data.x2)) if variant == "mean" else t(data.x_est)
    return (0.5 * (f1(m) + f2(m))).numpy()


def test_metrics(data, images: dict[str, np.ndarray]) -> dict:
    summary = evaluate(dataclasses.replace(data, baselines={**data.baselines, **images})).summary()
    return {k: {"rmse_1e-3": v["rmse_1e-3"]["mean"], "ssim_%": 100 * v["ssim"]["mean"]} for k, v in summary.items()}


def measure(name: str, out: Path) -> dict:
    run_dir, train_seconds = train_candidate(name, out)
    _, val_path, test_path = prepared(out)
    val, test = read_prepared(val_path), read_prepared(test_path)
    _, models = load_trained(run_dir, "cpu")
    start, chosen, images = time.perf_counter(), {}, {}
    test_refined = refiner(test)
    for variant in VARIANTS:
        lamda, error, curve = criterion(variant, models, val)
        chosen[variant] = {"lamda": lamda, "heldout_error": error, "curve": curve}
        z = outputs(variant, models, test)
        images[f"{variant}"] = z
        images[f"{variant} + DC"] = apply_consistency(z, test, lamda, test_refined)
    return {"candidate": name, "changes": CANDIDATES[name], "train_seconds": train_seconds,
            "best_step": best_step(run_dir), "chosen": chosen, "test": test_metrics(test, images),
            "measure_seconds": time.perf_counter() - start}


def best_step(run_dir: Path):
    """The step of the kept networks (select_best), from the run's log where it says so."""
    summary = run_dir / "summary.json"
    return json.loads(summary.read_text()).get("best_step") if summary.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "mr_ssim_candidates")
    parser.add_argument("--candidates", nargs="+", default=["base"], choices=list(CANDIDATES))
    args = parser.parse_args()
    for name in args.candidates:
        record = measure(name, args.out)
        print(json.dumps({k: record[k] for k in ("candidate", "train_seconds", "chosen", "test")}), flush=True)
        records = json.loads(PATH.read_text())["runs"] if PATH.exists() else []
        records = [r for r in records if r["candidate"] != name] + [record]
        write_result(PATH.name, {"protocol": demo_protocol("mr").describe(), "lamdas": list(LAMDAS), "runs": records})


if __name__ == "__main__":
    main()

"""Run-to-run spread of the CT demo's consensus-against-Noise2Noise comparison (issue 21, section 4).

The demo's claim "consensus SSIM > Noise2Noise SSIM" is tested there over the test slices of one
training run per method; a paired test over slices says nothing about another run. This script
retrains consensus and Noise2Noise from a finished ``demo ct`` folder (its prepared files and each
method's ``config.toml``) with other seeds (network initialisation and patch draws), denoises the
demo's test file with each run's default output, and records per seed:

* the test metrics of both methods (RMSE, body and air RMSE, SSIM; :func:`tomoconsensus.evaluation.evaluate`,
  as the demo's report), their paired per-slice differences, slices where consensus is better, and a
  one-sided Wilcoxon signed-rank p;
* each run's selected checkpoint, its criterion and its clean validation RMSE (summary.json).

Seed 0 is the demo's own pair of runs (reused, not retrained). Across seeds: mean, standard deviation
and range of consensus − Noise2Noise, and in how many seeds consensus is at least as good. The test
patients only report here; nothing is chosen.

Record: benchmarks/results/seed_spread.json and .md (written whole).
Run: .venv/bin/python benchmarks/seed_spread.py --demo-dir DEMO_CT_FOLDER [--seeds 0 1 2] [--work DIR]
About 6 min per extra seed on 2 idle cores; runs already in the work folder are reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

from tomoconsensus.atomic import write_text_atomic
from tomoconsensus.denoising import denoise
from tomoconsensus.evaluation import evaluate
from tomoconsensus.learn.config import load_train_config
from tomoconsensus.learn.loop import train

from common import RESULTS, write_result

METHODS = ("consensus", "noise2noise")
METRICS = {"ssim": +1, "rmse_hu": -1, "rmse_body_hu": -1, "rmse_air_hu": -1}  # +1: higher is better


def run_dir(method: str, seed: int, demo_dir: Path, work: Path) -> Path:
    """The run of ``method`` with ``seed``: the demo's own for seed 0, else trained (or reused) in ``work``."""
    if seed == 0:
        return demo_dir / "runs" / method
    out = work / f"{method}_s{seed}"
    if not (out / "model.pt").exists():
        config = dataclasses.replace(load_train_config(demo_dir / "runs" / method / "config.toml"), seed=seed,
                                     device="cpu")
        train(config, demo_dir / "ct_train.h5", out, demo_dir / "ct_val.h5", overwrite=out.exists(), progress=False)
    return out


def paired(a: list[float], b: list[float], sign: int) -> dict:
    """Mean difference a − b, slices where a is better, and the one-sided Wilcoxon p of 'a better'."""
    d = np.asarray(a) - np.asarray(b)
    better = int(np.sum(sign * d > 0))
    p = float(wilcoxon(sign * d, alternative="greater").pvalue) if np.any(d != 0) else 1.0
    return {"mean_difference": float(d.mean()), "slices_better": better, "slices": len(d), "wilcoxon_p": p}


def one_seed(seed: int, demo_dir: Path, work: Path) -> dict:
    """Train (or reuse), denoise and evaluate both methods for one seed."""
    test = demo_dir / "ct_test.h5"
    runs, outputs = {}, {}
    for method in METHODS:
        runs[method] = run_dir(method, seed, demo_dir, work)
        outputs[method] = work / f"denoised_{method}_s{seed}.h5"
        if not outputs[method].exists():
            denoise(runs[method], test, outputs[method], device="cpu", progress=False)
    ev = evaluate(test, outputs)
    record = {"runs": {}, "test": {}, "consensus_minus_noise2noise": {}}
    for method in METHODS:
        summary = json.loads((runs[method] / "summary.json").read_text())
        record["runs"][method] = {"run_dir": str(runs[method]), "selected_step": summary["best_step"],
                                  "criterion": summary["selection_criterion"],
                                  "criterion_value": summary["validation"][summary["selection_criterion"]],
                                  "val_rmse_hu": summary["validation"]["val_rmse_hu"]}
        record["test"][method] = {k: [row[k] for row in ev.per_slice[method]] for k in METRICS}
    for key, sign in METRICS.items():
        record["consensus_minus_noise2noise"][key] = paired(record["test"]["consensus"][key],
                                                           record["test"]["noise2noise"][key], sign)
    return record


def across(seeds: dict[int, dict]) -> dict:
    """Per metric: the per-seed mean differences, their mean, std, range and seeds where consensus is as good."""
    out = {}
    for key, sign in METRICS.items():
        d = np.array([s["consensus_minus_noise2noise"][key]["mean_difference"] for s in seeds.values()])
        out[key] = {"per_seed": d.tolist(), "mean": float(d.mean()), "std": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
                    "min": float(d.min()), "max": float(d.max()),
                    "seeds_consensus_at_least_as_good": int(np.sum(sign * d >= 0)), "seeds": len(d)}
    return out


def table(seeds: dict[int, dict]) -> str:
    """Markdown: per seed, the two methods' test means and the paired SSIM comparison."""
    lines = ["| seed | consensus RMSE / SSIM | Noise2Noise RMSE / SSIM | SSIM difference (points) | slices better "
             "| Wilcoxon p | val RMSE consensus / Noise2Noise (HU) |", "|---|---|---|---|---|---|---|"]
    for seed, s in seeds.items():
        c, n, d = s["test"]["consensus"], s["test"]["noise2noise"], s["consensus_minus_noise2noise"]["ssim"]
        lines.append(f"| {seed} | {np.mean(c['rmse_hu']):.2f} HU / {100 * np.mean(c['ssim']):.2f} % | "
                     f"{np.mean(n['rmse_hu']):.2f} HU / {100 * np.mean(n['ssim']):.2f} % | "
                     f"{100 * d['mean_difference']:+.2f} | {d['slices_better']} of {d['slices']} | "
                     f"{d['wilcoxon_p']:.2g} | {s['runs']['consensus']['val_rmse_hu']:.2f} / "
                     f"{s['runs']['noise2noise']['val_rmse_hu']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, required=True, help="a finished `demo ct` folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="seed_spread_"))
    work.mkdir(parents=True, exist_ok=True)
    seeds = {}
    for seed in args.seeds:
        seeds[seed] = one_seed(seed, args.demo_dir, work)
        d = seeds[seed]["consensus_minus_noise2noise"]["ssim"]
        print(f"seed {seed}: consensus - Noise2Noise SSIM {100 * d['mean_difference']:+.2f} points, "
              f"better on {d['slices_better']} of {d['slices']} slices", flush=True)
    summary = across(seeds)
    record = {"what": "run-to-run spread of consensus against Noise2Noise on the CT demo's test slices "
                      "(docstring of benchmarks/seed_spread.py)", "demo_dir": str(args.demo_dir),
              "seeds": {str(k): v for k, v in seeds.items()}, "across_seeds": summary}
    write_result("seed_spread.json", record)
    s = summary["ssim"]
    md = (table(seeds) + f"\nAcross {s['seeds']} seeds, consensus − Noise2Noise SSIM: {100 * s['mean']:+.2f} ± "
          f"{100 * s['std']:.2f} points (mean ± s.d. over seeds; range {100 * s['min']:+.2f} to "
          f"{100 * s['max']:+.2f}); "
          f"consensus at least as good in {s['seeds_consensus_at_least_as_good']} of {s['seeds']}. RMSE: "
          f"{summary['rmse_hu']['mean']:+.2f} ± {summary['rmse_hu']['std']:.2f} HU, consensus at least as good in "
          f"{summary['rmse_hu']['seeds_consensus_at_least_as_good']} of {s['seeds']}.\n")
    write_text_atomic(RESULTS / "seed_spread.md", md)
    print(md)


if __name__ == "__main__":
    main()

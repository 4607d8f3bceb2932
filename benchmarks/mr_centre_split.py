"""MR halves with a shared or a split centre: the selection criterion and the held-out results (issue 21 §5).

Both halves of ``prepare mr`` keep the central k-space lines, so their noise is 1 % correlated, all of
it in the low-frequency band (docs/mr-simulation.md, ``benchmarks/mr_halves_correlation.py``);
``mr_modality(centre_split=True)`` splits those lines too (weight 2 each; independent noise, but each half
keeps only half of the centre). This script prepares the MR demo's files both ways (the `demo mr`
protocol and seed: the same 4x masks, outer-line splits, x_est and references; only the centre's split
differs), trains consensus on each with the demo's training protocol, and records:

* per run, over its epochs on the validation patient: its own criterion (the consensus loss on its own
  validation halves, what selects its checkpoint), the clean RMSE of its default output (reported,
  never used), their Spearman correlation and the regret of the selected checkpoint (clean RMSE there /
  the run's best - 1);
* a score on the same data for both runs, so the two can be compared without a reference: the held-out
  error of the deployed operator g = (f1 + f2)/2 on a pair of validation halves,
  ½‖g(x1) − x2‖² + ½‖g(x2) − x1‖² (``val_output_on_halves``), on the split-centre halves (independent
  noise; each run scores the other's file through ``train(monitor=...)``) and on the shared-centre ones;
* the test metrics of each run's default output (the demo's 4 test slices; reported, never used).

The choice is the run with the lower score on the split-centre halves at its selected checkpoint.

Record: benchmarks/results/mr_centre_split.json and .md (written whole).
Run: .venv/bin/python benchmarks/mr_centre_split.py [--work DIR] [--quick]
About 12 min on 2 idle cores (two preparations of the demo's files, two training runs); finished
preparations and runs in the work folder are reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from tomoconsensus.atomic import write_text_atomic
from tomoconsensus.denoising import denoise
from tomoconsensus.evaluation import evaluate
from tomoconsensus.learn.loop import train
from tomoconsensus.mr.demo import prepare_mr_demo
from tomoconsensus.study.runner import demo_protocol

from common import RESULTS, log_rows, write_result

VARIANTS = {"shared": False, "split": True}
ERROR = "val_rmse_1e-3"
SCORE = "val_output_on_halves"


def prepare(work: Path, protocol) -> dict[str, Path]:
    """Each variant's folder of the demo's mr_{train,val,test}.h5 (prepared unless there)."""
    folders = {}
    for name, centre_split in VARIANTS.items():
        folders[name] = work / name
        if not (folders[name] / "mr_test.h5").exists():
            folders[name].mkdir(parents=True, exist_ok=True)
            variant = dataclasses.replace(protocol, data=dataclasses.replace(protocol.data, centre_split=centre_split))
            prepare_mr_demo(folders[name], variant, seed=0, progress=False, device="cpu")
    return folders


def train_variant(name: str, folders: dict[str, Path], protocol, work: Path) -> Path:
    """Consensus on one variant's files; the other variant's validation file is monitored."""
    run_dir = work / f"consensus_{name}"
    if not (run_dir / "model.pt").exists():
        config = protocol.training.config("cpu", "consensus", protocol.epochs("consensus"),
                                          protocol.lr_schedule("consensus"))
        other = next(k for k in VARIANTS if k != name)
        train(config, folders[name] / "mr_train.h5", run_dir, folders[name] / "mr_val.h5",
              overwrite=run_dir.exists(), progress=False, monitor={other: folders[other] / "mr_val.h5"})
    return run_dir


def summarise(name: str, run_dir: Path, folders: dict[str, Path], work: Path) -> dict:
    """Criterion tracking, the common scores at the selected checkpoint and the test metrics of one run."""
    summary = json.loads((run_dir / "summary.json").read_text())
    criterion, best_step = summary["selection_criterion"], summary["best_step"]
    own = log_rows(run_dir)
    other = next(k for k in VARIANTS if k != name)
    monitored = {r["step"]: r for r in log_rows(run_dir, f"monitor:{other}")}
    at = next(r for r in own if r["step"] == best_step)
    score = {name: at[SCORE], other: monitored[best_step][SCORE]}
    out = work / f"denoised_{name}.h5"
    if not out.exists():
        denoise(run_dir, folders[name] / "mr_test.h5", out, device="cpu", progress=False)
    test = evaluate(folders[name] / "mr_test.h5", {name: out}).per_slice[name]
    errors = [r[ERROR] for r in own]
    return {"selected_step": best_step, "steps": summary["steps"], "criterion": criterion,
            "criterion_value": at[criterion], "val_rmse_1e-3": at[ERROR], "best_val_rmse_1e-3": min(errors),
            "regret": at[ERROR] / min(errors) - 1,
            "spearman_over_epochs": float(spearmanr([r[criterion] for r in own], errors)[0]),
            "score_on_halves": score,
            "test": {k: float(np.mean([row[k] for row in test])) for k in ("rmse_1e-3", "ssim")},
            "test_per_slice": {k: [row[k] for row in test] for k in ("rmse_1e-3", "ssim")},
            "curve": {"step": [r["step"] for r in own], "criterion": [r[criterion] for r in own],
                      "val_rmse_1e-3": errors, f"{SCORE}_on_{other}": [monitored[r["step"]][SCORE] for r in own]}}


def table(runs: dict[str, dict], chosen: str) -> str:
    lines = ["| halves of training and selection | selected step | regret | Spearman over epochs | "
             "score on split-centre halves | score on shared-centre halves | val RMSE (1e-3) | "
             "test RMSE (1e-3) / SSIM (%) |", "|---|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        mark = "**" if name == chosen else ""
        lines.append(f"| {mark}{name} centre{mark} | {r['selected_step']} of {r['steps']} | "
                     f"{100 * r['regret']:.1f} % | {r['spearman_over_epochs']:+.2f} | "
                     f"{r['score_on_halves']['split']:.5f} | "
                     f"{r['score_on_halves']['shared']:.5f} | {r['val_rmse_1e-3']:.1f} | "
                     f"{r['test']['rmse_1e-3']:.1f} / {100 * r['test']['ssim']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mr_centre_split")
    parser.add_argument("--quick", action="store_true", help="the demo's quick protocol (a smoke run; no record)")
    args = parser.parse_args()
    protocol = demo_protocol("mr", quick=args.quick)
    folders = prepare(args.work, protocol)
    runs = {}
    for name in VARIANTS:
        runs[name] = summarise(name, train_variant(name, folders, protocol, args.work), folders, args.work)
        print(f"{name} centre: regret {100 * runs[name]['regret']:.1f} %, score on split-centre halves "
              f"{runs[name]['score_on_halves']['split']:.5f}", flush=True)
    chosen = min(runs, key=lambda k: runs[k]["score_on_halves"]["split"])
    record = {"what": "MR halves with a shared or a split centre (docstring of benchmarks/mr_centre_split.py)",
              "protocol": dataclasses.asdict(protocol.training) | {"epochs": protocol.epochs("consensus")},
              "chosen": chosen, "runs": runs}
    md = (f"MR demo protocol, consensus, one seed; chosen by the score on the split-centre validation halves: "
          f"**{chosen} centre**. Clean columns are reported, not used.\n\n" + table(runs, chosen))
    print(md)
    if not args.quick:
        write_result("mr_centre_split.json", record)
        write_text_atomic(RESULTS / "mr_centre_split.md", md)


if __name__ == "__main__":
    main()

"""How long, and with which step-size schedule, the CT demo trains its self-supervised networks (issue 21).

The demo's 24 epochs at a constant step (Adam 3e-4) were chosen by the thinning criterion among
24-epoch runs only, and both self-supervised methods still moved by up to 2 HU between consecutive
epochs there (docs/method.md, "Choosing without a reference"). This script trains consensus and
Noise2Noise from a finished ``demo ct`` folder (its prepared training and validation files and each
method's ``config.toml``) for 24 epochs at the constant step, and 48 and 72 epochs with a cosine step
from the same 3e-4, and records for every run, at its selected checkpoint:

* the method's own selection criterion (its held-out loss on the validation patient's thinning halves,
  ``selection_criterion`` of summary.json) -- what a user has, and what the choice is made with;
* the held-out error of the deployed operator, ½‖g(x1) − x2‖² + ½‖g(x2) − x1‖² (``val_output_on_halves``),
  a no-reference score on the same scale for both methods;
* the clean RMSE (whole image, body, air) and SSIM on the validation patient -- reported, never used --
  with the run's regret (clean RMSE at the selected checkpoint / the run's best - 1) and the Spearman
  correlation of criterion and clean RMSE over its epochs.

The choice per method is the configuration with the lowest criterion. No test patient is read.

Record: benchmarks/results/training_length_choice.json and .md (written whole).
Run: .venv/bin/python benchmarks/training_length_choice.py --demo-dir DEMO_CT_FOLDER [--work DIR]
About 11 min on 2 idle cores; runs already in the work folder are reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from scipy.stats import spearmanr

from tomoconsensus.atomic import write_text_atomic
from tomoconsensus.learn.config import load_train_config
from tomoconsensus.learn.loop import train

from common import RESULTS, log_rows, write_result

METHODS = ("consensus", "noise2noise")
#: name -> (epochs, lr_schedule)
SCHEDULES = {"constant24": (24, "constant"), "cosine48": (48, "cosine"), "cosine72": (72, "cosine")}
REPORTED = ("val_output_on_halves", "val_rmse_hu", "val_rmse_body_hu", "val_rmse_air_hu", "val_ssim")


def run_one(method: str, name: str, demo_dir: Path, work: Path) -> dict:
    """Train (or reuse) one run and summarise it at its selected checkpoint."""
    epochs, schedule = SCHEDULES[name]
    run_dir = work / f"{method}_{name}"
    if not (run_dir / "summary.json").exists():
        base = load_train_config(demo_dir / "runs" / method / "config.toml")
        config = dataclasses.replace(base, epochs=epochs, lr_schedule=schedule, device="cpu")
        train(config, demo_dir / "ct_train.h5", run_dir, demo_dir / "ct_val.h5", overwrite=run_dir.exists(),
              progress=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    criterion = summary["selection_criterion"]
    rows = log_rows(run_dir)
    criterion_curve, rmse_curve = [r[criterion] for r in rows], [r["val_rmse_hu"] for r in rows]
    best = min(rmse_curve)
    return {"method": method, "epochs": epochs, "lr_schedule": schedule, "steps": summary["steps"],
            "selected_step": summary["best_step"], "criterion": criterion,
            "criterion_value": summary["validation"][criterion],
            **{k: summary["validation"][k] for k in REPORTED},
            "train_seconds": summary["seconds"], "best_val_rmse_hu": best,
            "regret": summary["validation"]["val_rmse_hu"] / best - 1,
            "spearman_over_epochs": float(spearmanr(criterion_curve, rmse_curve)[0]),
            "curve": {"epoch": [r["epoch"] for r in rows], "criterion": criterion_curve, "val_rmse_hu": rmse_curve}}


def choose(runs: dict[str, dict]) -> dict[str, str]:
    """Per method, the run with the lowest selection criterion."""
    return {m: min((k for k, r in runs.items() if r["method"] == m), key=lambda k: runs[k]["criterion_value"])
            for m in METHODS}


def table(runs: dict[str, dict], chosen: dict[str, str]) -> str:
    """Markdown table of the runs, the chosen ones in bold."""
    lines = ["| run | epochs, step | selected epoch | criterion (×1e-4) | output on halves (×1e-4) | "
             "clean RMSE (HU) | regret | Spearman over epochs | body / air (HU) | SSIM (%) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in runs.items():
        mark = "**" if key in chosen.values() else ""
        epoch = r["selected_step"] * r["epochs"] / r["steps"]
        lines.append(f"| {mark}{key}{mark} | {r['epochs']}, {r['lr_schedule']} | {epoch:.0f} of {r['epochs']} | "
                     f"{1e4 * r['criterion_value']:.3f} | {1e4 * r['val_output_on_halves']:.3f} | "
                     f"{r['val_rmse_hu']:.2f} | {100 * r['regret']:.1f} % | {r['spearman_over_epochs']:+.2f} | "
                     f"{r['val_rmse_body_hu']:.2f} / {r['val_rmse_air_hu']:.2f} | "
                     f"{100 * r['val_ssim']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, required=True, help="a finished `demo ct` folder")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="training_length_"))
    runs = {}
    for method in METHODS:
        for name in SCHEDULES:
            key = f"{method}_{name}"
            runs[key] = r = run_one(method, name, args.demo_dir, work)
            print(f"{key}: criterion {r['criterion_value']:.4e}, val RMSE {r['val_rmse_hu']:.2f} HU "
                  f"(step {r['selected_step']} of {r['steps']})", flush=True)
    chosen = choose(runs)
    c, n = runs[chosen["consensus"]], runs[chosen["noise2noise"]]
    record = {"what": "training length and step schedule of the CT demo's self-supervised networks, chosen "
                      "by each method's held-out criterion on the validation patient (docstring of "
                      "benchmarks/training_length_choice.py)",
              "validation_file": str(args.demo_dir / "ct_val.h5"), "runs": runs, "chosen": chosen,
              "chosen_consensus_minus_noise2noise": {k: c[k] - n[k] for k in REPORTED}}
    write_result("training_length_choice.json", record)
    md = (f"Validation patient of the demo (10 slices); chosen per method by its lowest criterion: "
          f"{chosen['consensus']}, {chosen['noise2noise']}. Clean columns are reported, not used.\n\n"
          + table(runs, chosen))
    write_text_atomic(RESULTS / "training_length_choice.md", md)
    print(md)


if __name__ == "__main__":
    main()

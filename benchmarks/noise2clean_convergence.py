"""Is the CT demo's Noise2Clean bound trained to convergence? (issue 21 section 3, docs/method.md)

Noise2Clean is the supervised bound of the demo's table; "gap closed" is measured against it, so an
under-trained bound flatters the self-supervised methods. It may use the validation patient's clean
reference (it is supervised), never a test patient. This script retrains it from a finished
``demo ct`` folder (its prepared training and validation files and its Noise2Clean ``config.toml``)
with longer training and with a cosine step-size schedule, and records for every run the clean
validation loss and RMSE at the selected checkpoint, where that checkpoint lies in the run, and the
improvement over the last quarter of the run (best validation loss after 75 % of the steps relative
to the best before): a converged bound improves little there, and more training does not lower its
validation RMSE beyond the spread between seeds.

With ``--test`` (the demo's ``ct_test.h5``) every run also denoises the test patients, and the record
gives the gap the recorded demo's consensus closes against that bound: (SSIM_consensus - SSIM_FBP) /
(SSIM_bound - SSIM_FBP), with FBP and consensus from benchmarks/results/demo.json. The test patients
only report here (the length of training is not chosen on them).

Record: benchmarks/results/noise2clean_convergence.json (written whole).
Run: .venv/bin/python benchmarks/noise2clean_convergence.py --demo-dir DEMO_CT_FOLDER [--work DIR] [--test FILE]
About 2 min per 72 epochs on one idle CPU core; runs already in the work folder are reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from tomoconsensus.denoising import denoise
from tomoconsensus.evaluation import evaluate
from tomoconsensus.learn.config import load_train_config
from tomoconsensus.learn.loop import train

from common import RESULTS, log_rows, write_result

#: name -> (epochs, lr_schedule, seed)
RUNS = {
    "constant_72_s0": (72, "constant", 0),
    "constant_144_s0": (144, "constant", 0),
    "cosine_72_s0": (72, "cosine", 0),
    "cosine_144_s0": (144, "cosine", 0),
    "cosine_288_s0": (288, "cosine", 0),
    "cosine_576_s0": (576, "cosine", 0),
    "cosine_72_s1": (72, "cosine", 1),
    "cosine_144_s1": (144, "cosine", 1),
}


def last_quarter_gain(run_dir: Path, criterion: str) -> dict[str, float]:
    """Best ``criterion`` before and after 75 % of the steps, and the relative gain of the last quarter."""
    val = [r for r in log_rows(run_dir) if criterion in r]
    total = max(r["step"] for r in val)
    before = min(r[criterion] for r in val if r["step"] <= 0.75 * total)
    after = min(r[criterion] for r in val if r["step"] > 0.75 * total)
    return {"best_before_75pct": before, "best_after_75pct": after, "last_quarter_gain": 1.0 - after / before}


def run_one(name: str, base, demo_dir: Path, work: Path) -> dict:
    epochs, schedule, seed = RUNS[name]
    run_dir = work / name
    if not (run_dir / "summary.json").exists():
        config = dataclasses.replace(base, epochs=epochs, lr_schedule=schedule, seed=seed, device="cpu")
        train(config, demo_dir / "ct_train.h5", run_dir, demo_dir / "ct_val.h5", overwrite=run_dir.exists(),
              progress=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    criterion = summary["selection_criterion"]
    return {"epochs": epochs, "lr_schedule": schedule, "seed": seed, "steps": summary["steps"],
            "selected_step": summary["best_step"], "selected_share": summary["best_step"] / summary["steps"],
            "criterion": criterion, "val_loss": summary["validation"][criterion],
            "val_rmse_hu": summary["validation"]["val_rmse_hu"],
            "val_rmse_body_hu": summary["validation"]["val_rmse_body_hu"],
            "train_seconds": summary["seconds"], **last_quarter_gain(run_dir, criterion)}


def test_closure(run_dir: Path, test_file: Path, demo: dict) -> dict:
    """The run's Noise2Clean on the test patients, and the gap the recorded demo's consensus closes against it."""
    out = run_dir.parent / f"{run_dir.name}_test.h5"
    if not out.exists():
        denoise(run_dir, test_file, out, device="cpu", progress=False)
    summary = evaluate(test_file, {"Noise2Clean": out}).summary()["Noise2Clean"]
    ssim = {m: demo["summary"]["methods"][m]["ssim"]["mean"] for m in ("FBP", "Consensus")}
    return {"test_rmse_hu": summary["rmse_hu"]["mean"], "test_ssim": summary["ssim"]["mean"],
            "consensus_gap_closed": (ssim["Consensus"] - ssim["FBP"]) / (summary["ssim"]["mean"] - ssim["FBP"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, required=True, help="a finished `demo ct` folder")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--runs", nargs="*", default=list(RUNS))
    parser.add_argument("--test", type=Path, default=None, help="the demo's ct_test.h5 (closure against each bound)")
    args = parser.parse_args()
    demo = json.loads((RESULTS / "demo.json").read_text()) if args.test is not None else None
    base = load_train_config(args.demo_dir / "runs" / "noise2clean" / "config.toml")
    work = args.work or Path(tempfile.mkdtemp(prefix="n2c_convergence_"))
    results = {}
    for name in args.runs:
        results[name] = run_one(name, base, args.demo_dir, work)
        if args.test is not None:
            results[name].update(test_closure(work / name, args.test, demo))
        r = results[name]
        print(f"{name}: val RMSE {r['val_rmse_hu']:.2f} HU at step {r['selected_step']} of {r['steps']}, "
              f"last-quarter gain {100 * r['last_quarter_gain']:.1f} %", flush=True)
    record = {"what": "Noise2Clean convergence on the CT demo's validation patient (docstring of "
                      "benchmarks/noise2clean_convergence.py)",
              "demo_config": dataclasses.asdict(base), "runs": results,
              "test": None if args.test is None else {
                  "file": str(args.test), "demo_record": f"benchmarks/results/demo.json at {demo['git_commit'][:10]}",
                  "fbp_ssim": demo["summary"]["methods"]["FBP"]["ssim"]["mean"],
                  "consensus_ssim": demo["summary"]["methods"]["Consensus"]["ssim"]["mean"]}}
    write_result("noise2clean_convergence.json", record)


if __name__ == "__main__":
    main()

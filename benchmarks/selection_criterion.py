"""Does the held-out *noisy* loss pick what the clean reference would pick? (issue 21, docs/method.md)

Every run trains one method with the `demo ct` protocol (24 epochs instead of 12) and one change of
configuration; at the end of every epoch its networks are scored on the demo's validation patient
(LIDC-IDRI-0001, 10 slices, never a test patient) in two ways:

* the **criterion**: the method's own loss on held-out halves, computed on the validation slices
  prepared with the odd/even **view** split and with the count-domain **thinning** split (the same
  readings, so the same x_est; :mod:`tomoconsensus.ct.countsplit`);
* the **clean error** (what the criterion should track, unknown to a user): RMSE of the run's default
  output against the noiseless-FBP reference, over the whole slice, inside the body (reference > -500 HU)
  and in the air around it, and SSIM.

The record (benchmarks/results/selection_criterion.json, written whole) keeps every epoch of every
run, and the summary: per criterion, the Spearman correlation with the clean RMSE over the runs'
selected checkpoints and over every (run, epoch), and per run the regret of its selected epoch
(clean RMSE at the criterion's choice / the run's best clean RMSE - 1).

Run: .venv/bin/python benchmarks/selection_criterion.py [--work DIR] [--runs NAME ...] [--epochs 24]
     [--seed 0 --result selection_criterion.json]  (a second seed: --seed 1 --result selection_criterion_s1.json)
About 2-6 min per run on 2 CPU cores; runs already in the work folder are reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import torch

from tomoconsensus.atomic import write_text_atomic
from tomoconsensus.ct.demo import ct_split
from tomoconsensus.ct.pipeline import ct_modality, fan_beam_geometry, simulated_source, write_ct
from tomoconsensus.learn.loop import train
from tomoconsensus.study.anatomy import evenly_spaced
from tomoconsensus.study.runner import demo_protocol

from common import RESULTS, log_rows, write_result
from selection_summary import markdown, summarise

SPLITS = ("views", "thinning")
#: name -> (method, training split, TrainConfig overrides, training slices per patient or None = the demo's 20)
RUNS = {  # every value that differs between runs is explicit (the demo's defaults may change)
    "c_views_br0": ("consensus", "views", {"beta_r": 0.0, "patch_size": 64}, None),
    "c_views_br0.5": ("consensus", "views", {"beta_r": 0.5, "patch_size": 64}, None),
    "c_thin_br0": ("consensus", "thinning", {"beta_r": 0.0, "patch_size": 64}, None),
    "c_thin_br0.5": ("consensus", "thinning", {"beta_r": 0.5, "patch_size": 64}, None),
    "c_views_p32": ("consensus", "views", {"beta_r": 0.0, "patch_size": 32}, None),
    "c_thin_p32": ("consensus", "thinning", {"beta_r": 0.0, "patch_size": 32}, None),
    "c_views_pp5": ("consensus", "views", {"beta_r": 0.0, "patch_size": 64}, 5),
    "c_thin_pp5": ("consensus", "thinning", {"beta_r": 0.0, "patch_size": 64}, 5),
    "n2n_views": ("noise2noise", "views", {"patch_size": 64}, None),
    "n2n_thin": ("noise2noise", "thinning", {"patch_size": 64}, None),
}


def prepared(work: Path, split: str, name: str, per_patient: int | None = None) -> Path:
    """The demo's train or val slices (same seeds as the demo) prepared with ``split``; cached in ``work``."""
    path = work / f"{name}_{split}{'' if per_patient is None else f'_pp{per_patient}'}.h5"
    if path.exists():
        return path
    data = demo_protocol("ct").data
    geom = fan_beam_geometry(data.geometry)
    stack, offset = {n: (s, o) for n, s, o in ct_split(data)}[name]
    if per_patient is not None:
        stack = evenly_spaced(stack, per_patient)
    source = simulated_source(stack, geom, data.dose_fraction, offset, f"demo {name} slices",
                              counts=split == "thinning")
    write_ct(path, ct_modality(geom, "cpu", split), source, offset, progress=False)
    return path


#: criterion name -> (validation split, key of the val row): the method's loss and the held-out error of its
#: deployed image operator on each half (:func:`tomoconsensus.methods.output_on_halves_error`)
CRITERIA = {"loss_thinning": ("thinning", "{method}"), "loss_views": ("views", "{method}"),
            "output_thinning": ("thinning", "output_on_halves"), "output_views": ("views", "output_on_halves")}


def epoch_rows(run_dir: Path, method: str) -> list[dict]:
    """Per epoch: every criterion and the clean error of the default output on the view-split file (whose
    (x1 + x2) / 2 is x_est: what a user denoises), from the run's log.jsonl."""
    rows = {"thinning": {r["step"]: r for r in log_rows(run_dir)},
            "views": {r["step"]: r for r in log_rows(run_dir, "monitor:views")}}
    out = []
    for step, r in sorted(rows["thinning"].items()):
        views = rows["views"][step]
        crit = {f"criterion_{name}": rows[split][step][f"val_{key.format(method=method)}"]
                for name, (split, key) in CRITERIA.items()}
        out.append({"epoch": round(r["epoch"]), "step": step, **crit,
                    **{k: views[f"val_{k}"] for k in ("rmse_hu", "rmse_body_hu", "rmse_air_hu")},
                    "ssim": 100 * views["val_ssim"]})
    return out


def measure(name: str, work: Path, epochs: int, seed: int = 0) -> dict:
    """Train one run (selected natively on the thinning-split validation file, the view-split file as a
    monitor) and return its per-epoch record."""
    method, split, overrides, per_patient = RUNS[name]
    train_path = prepared(work, split, "train", per_patient)
    val = {s: prepared(work, s, "val") for s in SPLITS}
    config = dataclasses.replace(demo_protocol("ct").training.config("cpu"), method=method, epochs=epochs,
                                 lr_schedule="constant",  # this record's step (the demo now anneals its 72 epochs)
                                 seed=seed, **overrides)
    run_dir = work / "runs" / (name if seed == 0 else f"{name}_s{seed}")
    if not (run_dir / "summary.json").exists():
        train(config, train_path, run_dir, val["thinning"], resume=(run_dir / "checkpoint.pt").exists(),
              progress=False, monitor={"views": val["views"]})
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = epoch_rows(run_dir, method)
    print(f"{name}: selected step {summary['best_step']}, " + "; ".join(
        f"e{r['epoch']} {r['criterion_loss_thinning']:.4g}/{r['criterion_output_thinning']:.4g} {r['rmse_hu']:.2f} HU"
        for r in rows),
        flush=True)
    return {"run": name, "method": method, "training_split": split, "overrides": overrides,
            "training_slices_per_patient": per_patient or 20, "selection_criterion": summary["selection_criterion"],
            "selected_step": summary["best_step"], "training_seconds": round(summary["seconds"], 1),
            "torch_threads_note": "timings on a shared 2-core machine (other jobs running): indicative only",
            "epochs": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "selection_criterion")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0, help="training seed (initialisation, patch draws)")
    parser.add_argument("--result", default="selection_criterion.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    records = [measure(name, args.work, args.epochs, args.seed) for name in args.runs]
    protocol = demo_protocol("ct")
    protocol = dataclasses.replace(protocol, training=dataclasses.replace(protocol.training, epochs=args.epochs,
                                                                          lr_schedule="constant"))
    record = {"protocol": protocol.describe() + f"; here {args.epochs} epochs, and each run's own training "
              "split and 'overrides' (beta_r, patch_size) replace the demo's values",
              "validation": "demo validation patient LIDC-IDRI-0001, 10 slices, prepared with each split "
                            "(same readings)",
              "clean_error": "default output vs noiseless-FBP reference; body = reference > -500 HU",
              "training_seed": args.seed, "torch_threads": torch.get_num_threads(),
              "summary": summarise(records, CRITERIA), "runs": records}
    print(markdown(record, list(CRITERIA)))
    write_result(args.result, record)
    write_text_atomic(RESULTS / Path(args.result).with_suffix(".md").name, markdown(record, list(CRITERIA)))


if __name__ == "__main__":
    main()

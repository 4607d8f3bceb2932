"""The selection criterion at the paper's scanner: benchmarks/selection_criterion.py on fidelity.py's data.

Issue 21 asks that the no-reference criterion track the clean error on the validation patient of the
demo (`selection_criterion.py`, 128^2, 360 views) *and* of `benchmarks/fidelity.py`: the shared
clinical series, the paper's patient split (8 training patients, validation ACRIN-FLT-Breast_001, the
two test patients never touched here), the `ldct-fanbeam` scanner (2304 views, curved detector,
electronic noise) at quarter dose on a 256^2 grid (1.5 mm; fidelity.py's reduced scale).

Every run trains one configuration for 24 epochs of 24 steps (UNet-16 depth 3, batch 16, Adam 3e-4 at a
constant step, beta_w 5e-6), validating at the end of every epoch on the validation patient's 10
slices prepared with both splits from the same readings (so the same x_est), exactly as
`selection_criterion.py` does: the criteria (each method's held-out loss and the held-out error of its
deployed operator, on the thinning and on the view split) against the clean RMSE of the default output
(noiseless-FBP reference; body > -500 HU and air reported apart). The configurations vary the split,
beta_r, the patch size and the amount of data (48 or 16 training slices, the same steps), plus
Noise2Noise on each split.

Run: .venv/bin/python benchmarks/fidelity_selection.py [--work DIR] [--runs NAME ...] [--seed 0]
Writes benchmarks/results/fidelity_selection.json and .md (whole). 2-5 min per run and 3 min of
preparation on 2 CPU cores; prepared files and finished runs in the work folder are reused.
Without ../shared it prints why and exits 0 without writing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from tomoconsensus.atomic import write_text_atomic
from tomoconsensus.ct.pipeline import ct_modality, simulated_source, write_ct
from tomoconsensus.learn.config import load_train_config
from tomoconsensus.learn.loop import train

from common import RESULTS, write_result
from fidelity import (
    DOSE_FRACTION,
    PAPER_CONFIG,
    SERIES,
    VAL_PATIENTS,
    Scale,
    load_stack,
    patient_split,
    scaled_geometry,
)
from selection_criterion import CRITERIA, SPLITS, epoch_rows
from selection_summary import markdown, summarise

SCALE = Scale(image_size=256, n_views=2304, base_features=16, depth=3, batch_size=16, learning_rate=3e-4,
              device="cpu")
EPOCHS, STEPS_PER_EPOCH, VAL_SLICES = 24, 24, 10
#: name -> (method, training split, TrainConfig overrides, training slices per patient)
RUNS = {
    "c_thin_br0": ("consensus", "thinning", {"beta_r": 0.0, "patch_size": 64}, 6),
    "c_thin_br0.5": ("consensus", "thinning", {"beta_r": 0.5, "patch_size": 64}, 6),
    "c_views_br0": ("consensus", "views", {"beta_r": 0.0, "patch_size": 64}, 6),
    "c_views_br0.5": ("consensus", "views", {"beta_r": 0.5, "patch_size": 64}, 6),
    "c_thin_p32": ("consensus", "thinning", {"beta_r": 0.0, "patch_size": 32}, 6),
    "c_views_p32": ("consensus", "views", {"beta_r": 0.0, "patch_size": 32}, 6),
    "c_thin_s16": ("consensus", "thinning", {"beta_r": 0.0, "patch_size": 64}, 2),
    "c_views_s16": ("consensus", "views", {"beta_r": 0.0, "patch_size": 64}, 2),
    "n2n_thin": ("noise2noise", "thinning", {"patch_size": 64}, 6),
    "n2n_views": ("noise2noise", "views", {"patch_size": 64}, 6),
}


def prepared(work: Path, split: str, name: str, per_patient: int) -> Path:
    """fidelity.py's train or val slices (its seeds: train 0, val 1) prepared with ``split``; cached."""
    path = work / f"{name}_{split}_pp{per_patient}.h5"
    if not path.exists():
        offset = {"train": 0, "val": 1}[name]
        geom = scaled_geometry(SCALE)
        stack = load_stack(patient_split(SCALE)[name], per_patient)
        source = simulated_source(stack, geom, DOSE_FRACTION, SCALE.seed + offset, SERIES,
                                  counts=split == "thinning")
        print(write_ct(path, ct_modality(geom, "cpu", split), source, SCALE.seed + offset, progress=False),
              flush=True)
    return path


def measure(name: str, work: Path, seed: int) -> dict:
    """Train one run (selected on the thinning-split validation file, the view split as a monitor)."""
    method, split, overrides, per_patient = RUNS[name]
    n_train = per_patient * SCALE.train_patients
    patches = STEPS_PER_EPOCH * SCALE.batch_size // n_train  # the same steps per epoch for every amount of data
    config = load_train_config(PAPER_CONFIG, {
        "method": method, "epochs": EPOCHS, "base_features": SCALE.base_features, "depth": SCALE.depth,
        "batch_size": SCALE.batch_size, "patches_per_slice": patches, "learning_rate": SCALE.learning_rate,
        "lr_schedule": "constant", "device": "cpu", "seed": seed, **overrides})
    val = {s: prepared(work, s, "val", VAL_SLICES) for s in SPLITS}
    run_dir = work / "runs" / (name if seed == 0 else f"{name}_s{seed}")
    if not (run_dir / "summary.json").exists():
        train(config, prepared(work, split, "train", per_patient), run_dir, val["thinning"],
              resume=(run_dir / "checkpoint.pt").exists(), progress=False, monitor={"views": val["views"]})
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = epoch_rows(run_dir, method)
    best = min(rows, key=lambda r: r["rmse_hu"])
    print(f"{name}: selected step {summary['best_step']}; best clean e{best['epoch']} {best['rmse_hu']:.2f} HU; "
          f"last e{rows[-1]['epoch']} {rows[-1]['rmse_hu']:.2f} HU; {summary['seconds'] / 60:.1f} min", flush=True)
    return {"run": name, "method": method, "training_split": split, "overrides": overrides,
            "training_slices_per_patient": per_patient, "training_slices": n_train, "patches_per_slice": patches,
            "selection_criterion": summary["selection_criterion"], "selected_step": summary["best_step"],
            "training_seconds": round(summary["seconds"], 1), "epochs": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "fidelity_selection")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--seed", type=int, default=0, help="training seed (initialisation, patch draws)")
    parser.add_argument("--result", default="fidelity_selection.json")
    args = parser.parse_args()
    if not SERIES.is_dir() or not any(SERIES.glob("*.npz")):
        print(f"fidelity_selection skipped: {SERIES} not found (the clinical series live in ../shared)")
        return
    args.work.mkdir(parents=True, exist_ok=True)
    records = [measure(name, args.work, args.seed) for name in args.runs]
    record = {"protocol": (f"{SCALE.image_size}^2 ({384 / SCALE.image_size:g} mm), ldct-fanbeam {SCALE.n_views} views "
                           f"(curved detector, electronic noise), quarter dose, {SCALE.train_patients} training "
                           f"patients; UNet-{SCALE.base_features} depth {SCALE.depth}, batch {SCALE.batch_size}, "
                           f"Adam {SCALE.learning_rate:g} constant, beta_w 5e-6, {EPOCHS} epochs of "
                           f"{STEPS_PER_EPOCH} steps; each run's own split, beta_r, patch size and training slices"),
              "validation": f"fidelity.py's validation patient {', '.join(VAL_PATIENTS)}, "
                            f"{VAL_SLICES} slices, prepared with each split (same readings); test patients unused",
              "clean_error": "default output vs noiseless-FBP reference; body = reference > -500 HU",
              "training_seed": args.seed, "torch_threads": torch.get_num_threads(),
              "timing_note": "2 CPU cores, one job at a time", "summary": summarise(records, CRITERIA), "runs": records}
    print(markdown(record, list(CRITERIA)))
    write_result(args.result, record)
    write_text_atomic(RESULTS / Path(args.result).with_suffix(".md").name, markdown(record, list(CRITERIA)))


if __name__ == "__main__":
    main()

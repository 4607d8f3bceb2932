"""Does the held-out noisy loss pick what the clean reference would pick in the PET and spectral demos?

Issue 21 asks to confirm the CT finding (`selection_criterion.py`: the count-thinning split's held-out
loss tracks the clean error, the view split's does not) for the other modalities. MR is measured by
`mr_centre_split.py`. This script does PET (binomial thinning of the prompts, its only split) and
spectral CT (odd/even views, the demo's split, and binomial thinning of every bin's counts).

Each run trains one configuration on the modality's demo files (the `demo <modality>` protocol as it
was when the records were made, :data:`RECORD_TRAINING`; its seed) for twice that protocol's epochs at
its constant step, validating at the end of every epoch on the demo's validation patient, never a test
patient (the test files are written by the demo's preparation and not read):

* the **criteria**: the method's own held-out loss and the held-out error of its deployed operator
  (`output_on_halves`) on the validation halves of each split (spectral: the same counts split both
  ways, so the same x_est);
* the **clean error**: RMSE of the default output against the demo's reference (PET: activity, 0.01
  units; spectral: HU, mean of the bins), on the validation file of the demo's own split.

Configurations: beta_r 0 (the demos' value) and 0.5, 32^2 patches instead of 64^2, fewer training
slices with the same steps, and Noise2Noise; spectral CT trains each on both splits.
Record: benchmarks/results/selection_<modality>.json and .md (written whole; benchmarks/selection_summary.py).

Run: .venv/bin/python benchmarks/selection_modalities.py --modality pet|spectral [--work DIR] [--seed 0]
     (--seed 1 writes selection_<modality>_s1.json)
About 2 min per PET run and 1 min per spectral run on 2 CPU cores; finished runs in the work folder are reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import torch

from tomoconsensus.atomic import write_text_atomic
from tomoconsensus.learn.loop import train
from tomoconsensus.study.runner import demo_protocol, demo_spec

from common import RESULTS, log_rows, write_result
from selection_summary import markdown, summarise

#: modality -> its splits, the demo's first; training slices per patient of the smaller training set and its
#: patches per slice per epoch (the demo's steps per epoch)
MODALITIES = {"pet": (("thinning",), 4, 8), "spectral": (("views", "thinning"), 2, 10)}
#: name -> (method, training overrides, smaller training set); beta_r explicit (the demos' value is 0)
RUNS = {"c_br0": ("consensus", {"beta_r": 0.0}, False), "c_br0.5": ("consensus", {"beta_r": 0.5}, False),
        "c_p32": ("consensus", {"beta_r": 0.0, "patch_size": 32}, False),
        "c_few": ("consensus", {"beta_r": 0.0}, True), "n2n": ("noise2noise", {}, False)}


#: the demos' training values these records start from (both demos have since taken the configuration chosen
#: here: 32^2 patches, twice the epochs); pinned so that the records can be rerun and extended
RECORD_TRAINING = {"pet": {"patch_size": 64, "epochs": 12, "patches_per_slice": 4},
                   "spectral": {"patch_size": 64, "epochs": 8, "patches_per_slice": 4}}


def protocol_for(modality: str, split: str, few: bool):
    """The record's demo protocol with ``split`` (spectral) and, when ``few``, the smaller training set."""
    protocol = demo_protocol(modality)
    data, training = protocol.data, dataclasses.replace(protocol.training, **RECORD_TRAINING[modality])
    if "split" in {f.name for f in dataclasses.fields(data)}:
        data = dataclasses.replace(data, split=split)
    if few:
        _, per_patient, patches = MODALITIES[modality]
        data = dataclasses.replace(data, train_slices_per_patient=per_patient)
        training = dataclasses.replace(training, patches_per_slice=patches)
    return dataclasses.replace(protocol, data=data, training=training)


def prepared(work: Path, modality: str, split: str, few: bool) -> tuple[Path, Path]:
    """(train, val) files of the demo prepared with ``split``; cached in ``work``."""
    folder = work / f"{modality}_{split}{'_few' if few else ''}"
    paths = [folder / f"{modality}_{name}.h5" for name in ("train", "val", "test")]
    if not all(p.exists() for p in paths):
        folder.mkdir(parents=True, exist_ok=True)
        paths = demo_spec(modality).prepare(folder, protocol_for(modality, split, few), progress=False, device="cpu")
    return paths[0], paths[1]


def epoch_rows(run_dir: Path, method: str, splits: tuple[str, ...], own: str) -> list[dict]:
    """Per epoch: each split's criteria and the clean error on the demo split's validation file."""
    rows = {s: {r["step"]: r for r in log_rows(run_dir, "val" if s == own else f"monitor:{s}")} for s in splits}
    out = []
    for step, r in sorted(rows[splits[0]].items()):
        crit = {f"criterion_{kind}_{s}": rows[s][step][f"val_{key}"] for s in splits
                for kind, key in (("loss", method), ("output", "output_on_halves"))}
        clean = {k: r[f"val_{k}"] for k in ("rmse_hu", "rmse") if f"val_{k}" in r}
        out.append({"epoch": round(r["epoch"]), "step": step, **crit, **clean, "ssim": 100 * r["val_ssim"]})
    return out


def measure(modality: str, name: str, split: str, work: Path, seed: int) -> dict:
    """Train one run on ``split`` (selected on its own validation halves, the other split as a monitor)."""
    method, overrides, few = RUNS[name]
    splits = MODALITIES[modality][0]
    protocol = protocol_for(modality, split, few)
    config = dataclasses.replace(protocol.training.config("cpu", method, 2 * protocol.training.epochs, "constant"),
                                 seed=seed, **overrides)
    train_path, val_path = prepared(work, modality, split, few)
    monitor = {s: prepared(work, modality, s, False)[1] for s in splits if s != split}
    run_dir = work / "runs" / f"{modality}_{name}_{split}_s{seed}"
    if not (run_dir / "summary.json").exists():
        train(config, train_path, run_dir, val_path, resume=(run_dir / "checkpoint.pt").exists(), progress=False,
              monitor=monitor)
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = epoch_rows(run_dir, method, splits, split)
    print(f"{modality} {name} ({split}): selected step {summary['best_step']}, {summary['seconds'] / 60:.1f} min",
          flush=True)
    return {"run": f"{name}_{split}" if len(splits) > 1 else name, "method": method, "training_split": split,
            "overrides": overrides, "training_slices_per_patient": protocol.data.train_slices_per_patient,
            "patches_per_slice": protocol.training.patches_per_slice, "epochs_trained": config.epochs,
            "selection_criterion": summary["selection_criterion"], "selected_step": summary["best_step"],
            "training_seconds": round(summary["seconds"], 1), "epochs": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", choices=list(MODALITIES), required=True)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "selection_modalities")
    parser.add_argument("--seed", type=int, default=0, help="training seed (initialisation, patch draws)")
    parser.add_argument("--result", default=None, help="record name (default selection_<modality>; seeds > 0: "
                                                       "selection_<modality>_s<seed>)")
    args = parser.parse_args()
    result = args.result or f"selection_{args.modality}{f'_s{args.seed}' if args.seed else ''}"
    args.work.mkdir(parents=True, exist_ok=True)
    splits = MODALITIES[args.modality][0]
    records = [measure(args.modality, name, split, args.work, args.seed) for split in splits for name in RUNS]
    criteria = [f"{kind}_{s}" for s in splits for kind in ("loss", "output")]
    clean, unit, digits = ("rmse_hu", "HU", 2) if "rmse_hu" in records[0]["epochs"][0] else ("rmse", "activity", 4)
    protocol = protocol_for(args.modality, splits[0], few=False)
    record = {"protocol": f"{protocol.describe()}; here {2 * protocol.training.epochs} epochs at the constant step "
                          "and each run's own split, beta_r, patch size and training set",
              "validation": f"the demo's validation slices, prepared with each split ({', '.join(splits)}; same "
                            f"counts); clean error on the {splits[0]} file; test files not read",
              "clean_error": f"{clean}: default output vs the demo's reference", "training_seed": args.seed,
              "torch_threads": torch.get_num_threads(), "summary": summarise(records, criteria, clean),
              "runs": records}
    text = markdown(record, criteria, clean, unit, digits)
    print(text)
    write_result(f"{result}.json", record)
    write_text_atomic(RESULTS / f"{result}.md", text)


if __name__ == "__main__":
    main()

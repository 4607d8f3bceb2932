"""Consensus vs Noise2Noise on unseen CT patients: the measurements of docs/method.md, rerunnable.

Each named run trains one method with the `demo ct` protocol and one change, selects its epoch on
the held-out *noisy* validation patient, and is then measured against the reference on the demo's
test patients (another collection). Results are appended to
benchmarks/results/ct_consensus_ablation.json (one record per run).

Run: .venv/bin/python benchmarks/ct_consensus_ablation.py [--out DIR] [--runs NAME ...]
     (``--runs all`` for every run; the data-amount runs need ../shared/data/ct/tcia_series)
A run takes 1-3 min on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tomoconsensus.ct.demo import prepare_ct_demo
from tomoconsensus.ct.io import read_images
from tomoconsensus.ct.pipeline import ct_modality, fan_beam_geometry, simulated_source, write_ct
from tomoconsensus.denoising import denoise
from tomoconsensus.evaluation import evaluate
from tomoconsensus.learn.loop import train
from tomoconsensus.study.anatomy import SERIES_VAL_PATIENTS, evenly_spaced, subset
from tomoconsensus.study.runner import demo_protocol

from common import RESULTS, write_result

ROOT = Path(__file__).resolve().parents[1]
SERIES = ROOT.parent / "shared" / "data" / "ct" / "tcia_series"
C, N = ("z", "mean"), ("mean", "f1")
#: The training values and split of this record: the CT demo's protocol when the record was made (64^2 patches,
#: 12 epochs at a constant step, beta_r 0, view split); the demo's own values have changed since.
RECORD_TRAINING = {"patch_size": 64, "epochs": 12, "lr_schedule": "constant", "beta_r": 0.0}
RECORD_SPLIT = "views"


def record_protocol():
    """The demo protocol with this record's training values and split."""
    p = demo_protocol("ct")
    return dataclasses.replace(p, training=dataclasses.replace(p.training, **RECORD_TRAINING),
                               data=dataclasses.replace(p.data, split=RECORD_SPLIT))


#: name -> (method, TrainConfig overrides, output variants, training slices per patient or None = demo's)
RUNS = {
    "c_br0.5": ("consensus", {"beta_r": 0.5}, C, None), "c_br0": ("consensus", {}, C, None),
    "n2n": ("noise2noise", {}, N, None), "n2c": ("noise2clean", {}, ("full",), None),
    "c_br0_s1": ("consensus", {"seed": 1}, C, None), "n2n_s1": ("noise2noise", {"seed": 1}, N, None),
    "c_br0_e24": ("consensus", {"epochs": 24}, C, None), "n2n_e24": ("noise2noise", {"epochs": 24}, N, None),
    "n2c_e24": ("noise2clean", {"epochs": 24}, ("full",), None),
    "c_cos": ("consensus", {"lr_schedule": "cosine"}, C, None),
    "n2n_cos": ("noise2noise", {"lr_schedule": "cosine"}, N, None),
    "c_cos_s1": ("consensus", {"lr_schedule": "cosine", "seed": 1}, C, None),
    "n2n_cos_s1": ("noise2noise", {"lr_schedule": "cosine", "seed": 1}, N, None),
    "c_tied": ("consensus", {"tie_networks": True}, C, None),
    "c_tied_e24": ("consensus", {"tie_networks": True, "epochs": 24}, C, None),
    "c_bw5e-5": ("consensus", {"beta_w": 5e-5}, C, None),
    "c_bw5e-5_e24": ("consensus", {"beta_w": 5e-5, "epochs": 24}, C, None),
    "c_pp5": ("consensus", {}, C, 5), "n2n_pp5": ("noise2noise", {}, N, 5),
    "c_pp40": ("consensus", {}, C, 40), "n2n_pp40": ("noise2noise", {}, N, 40),
    "c_p32": ("consensus", {"patch_size": 32}, C, None), "n2n_p32": ("noise2noise", {"patch_size": 32}, N, None),
    "c_p96": ("consensus", {"patch_size": 96}, C, None), "n2n_p96": ("noise2noise", {"patch_size": 96}, N, None),
}


def training_file(data: Path, per_patient: int) -> Path:
    """Demo-grid training slices from the shared 512^2 TCIA series (more than the package embeds)."""
    path = data / f"train_pp{per_patient}.h5"
    if not path.exists():
        grid = data / f"tcia_series_{per_patient}.npz"
        subprocess.run([sys.executable, str(ROOT / "examples" / "ct" / "make_demo_slices.py"), str(SERIES), str(grid),
                        str(per_patient)], check=True)
        geom = fan_beam_geometry("demo-fanbeam")
        stack = evenly_spaced(subset(read_images(grid), lambda p: p not in SERIES_VAL_PATIENTS), per_patient)
        write_ct(path, ct_modality(geom, "cpu"), simulated_source(stack, geom, 0.25, 0, grid), 0, progress=False)
    return path


def measure(name: str, out: Path, files: tuple[Path, Path, Path]) -> dict:
    method, overrides, variants, per_patient = RUNS[name]
    train_path, val_path, test_path = files
    if per_patient is not None:
        train_path = training_file(out / "data", per_patient)
    config = dataclasses.replace(record_protocol().training.config("cpu"), method=method, **overrides)
    run_dir = out / "runs" / name
    if not (run_dir / "model.pt").exists():
        train(config, train_path, run_dir, val_path, resume=(run_dir / "checkpoint.pt").exists(), progress=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    results = {}
    for variant in variants:
        results[variant] = run_dir / f"test_{variant}.h5"
        if not results[variant].exists():
            denoise(run_dir, test_path, results[variant], variant=variant, device="cpu", progress=False)
    test = evaluate(test_path, results).summary()
    return {"run": name, "method": method, "overrides": overrides, "training_slices_per_patient": per_patient or 20,
            "selected_step": summary.get("best_step"), "validation": summary.get("validation"),
            "test": {k: {m: v[m]["mean"] for m in ("rmse_hu", "ssim", "roi_std")} for k, v in test.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "ct_consensus_ablation")
    parser.add_argument("--runs", nargs="+", default=["c_br0", "n2n"], choices=[*RUNS, "all"])
    args = parser.parse_args()
    names = list(RUNS) if "all" in args.runs else args.runs
    data = args.out / "data"
    data.mkdir(parents=True, exist_ok=True)
    files = tuple(data / f"ct_{n}.h5" for n in ("train", "val", "test"))
    if not all(f.exists() for f in files):
        files = prepare_ct_demo(data, record_protocol(), progress=False)
    path = RESULTS / "ct_consensus_ablation.json"
    records = json.loads(path.read_text())["runs"] if path.exists() else []
    for name in names:
        record = measure(name, args.out, files)
        records = [r for r in records if r["run"] != name] + [record]
        print(json.dumps({k: record[k] for k in ("run", "selected_step", "test")}))
        write_result(path.name, {"protocol": record_protocol().describe(), "runs": records})


if __name__ == "__main__":
    main()

"""MR demo (issue 14): sampling density and data consistency at inference, measured.

For each sampling variant (``d0`` the demo's uniform masks; ``d1``/``d2`` variable density |k|^-d;
``_c24`` 24 centre lines, all 4x) the script prepares the MR demo's files with the demo's seeds and
trains consensus, Noise2Noise and Noise2Clean with the demo protocol (distillation left out). Then:

* the measurement objects (k-space, ESPIRiT maps, masks) of the validation and test slices are
  regenerated with the same seeds and checked against the prepared files (x_est, reference);
* data consistency x_dc = argmin ||M F S x - y||^2 + lam ||x - z||^2 (tomoconsensus.mr.consistency)
  is applied to each method's default output z. lam is chosen per method on the *validation* slices
  without any reference: the solution from half k's lines, with a prior from half k's data only
  (consensus f_k(x_k), Noise2Noise f(x_k), Noise2Clean f(SENSE of half k)), predicts the other
  half's outer lines; the summed error over both directions and all validation slices is minimised
  over a grid (inf = no consistency);
* everything is measured against the reference on the test slices (and, for information only, the
  test RMSE of every lam of the grid).

Results: benchmarks/results/mr_method_ablation.json (one record per sampling variant).
Run: PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/mr_method_ablation.py --sampling d0 d2
One variant takes 30-40 min on 2 shared cores (trainings 12-16, 6-9 and 6-10 min; consistency 3-4 min).
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

import tomoconsensus.mr.pipeline as mr_pipeline
from tomoconsensus import methods
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.evaluation import evaluate
from tomoconsensus.learn.loop import train
from tomoconsensus.learn.trained import load_trained
from tomoconsensus.mr.consistency import data_consistency, from_channels, heldout_error
from tomoconsensus.mr.demo import mr_demo_volumes, mr_split, prepare_mr_demo
from tomoconsensus.mr.modality import MRModality
from tomoconsensus.mr.recon import sense, to_channels
from tomoconsensus.mr.sources import undersampled_slices
from tomoconsensus.study.protocol import StudyProtocol
from tomoconsensus.study.runner import demo_protocol, with_data

from common import RESULTS, write_result

#: name -> (variable_density, centre lines)
SAMPLING = {"d0": (0.0, 16), "d1": (1.0, 16), "d2": (2.0, 16), "d1_c24": (1.0, 24)}
TRAINED = ("consensus", "noise2noise", "noise2clean")
#: lam candidates (k-space units squared per image pixel), inf = the network output unchanged
LAMDAS = [*np.logspace(-4, 1, 16).tolist(), float("inf")]
#: report label -> (run, output variant)
OUTPUTS = {"Consensus": ("consensus", "mean"), "Consensus z": ("consensus", "z"),
           "Noise2Noise": ("noise2noise", "mean"), "Noise2Clean": ("noise2clean", "full")}


def protocol_for(name: str) -> StudyProtocol:
    _, centre = SAMPLING[name]
    return with_data(demo_protocol("mr"), center_lines=centre)


def use_density(d: float) -> None:
    """Make the demo's preparation draw variable-density masks (the pipeline itself is not changed).

    ``write_mr`` passes its own ``variable_density`` (0) positionally, so the wrapper replaces it."""
    def drawn_with_density(volumes, acceleration, center_lines, seed, calib_width=None, _density=0.0, *rest):
        return undersampled_slices(volumes, acceleration, center_lines, seed, calib_width, d, *rest)
    mr_pipeline.undersampled_slices = drawn_with_density


def prepared_files(name: str, out: Path) -> tuple[Path, Path, Path]:
    data = out / name / "data"
    files = tuple(data / f"mr_{n}.h5" for n in ("train", "val", "test"))
    if not all(f.exists() for f in files):
        data.mkdir(parents=True, exist_ok=True)
        use_density(SAMPLING[name][0])
        files = prepare_mr_demo(data, protocol_for(name), progress=False, device="cpu")
    return files


def train_runs(name: str, out: Path) -> dict:
    train_path, val_path, _ = prepared_files(name, out)
    config = protocol_for(name).training.config("cpu")
    seconds = {}
    for method in TRAINED:
        run_dir = out / name / "runs" / method
        if not (run_dir / "model.pt").exists():
            start = time.perf_counter()
            resume = (run_dir / "checkpoint.pt").exists()
            print(train(dataclasses.replace(config, method=method), train_path, run_dir, val_path, resume=resume,
                        progress=False, overwrite=not resume and run_dir.exists()), flush=True)
            seconds[method] = time.perf_counter() - start
    return seconds


def measurements(name: str, split: str, data_path: Path) -> list:
    """The Slices (k-space, maps, design, scale) of the val/test split, regenerated with the demo's seeds
    and checked against the prepared file (SENSE x_est and reference must agree)."""
    protocol, (density, _) = protocol_for(name), SAMPLING[name]
    mr = protocol.data
    (_, sub, n, offset), = [s for s in mr_split(mr) if s[0] == split]
    volumes = mr_demo_volumes(split, sub, n, offset, mr, 0)
    gen = undersampled_slices(volumes, mr.acceleration, mr.center_lines, offset, variable_density=density,
                              virtual_coils=mr.virtual_coils or None)
    slices = [next(gen) for _ in range(min(n, len(sub.hu)))]
    data, modality = read_prepared(data_path), MRModality(mr.acceleration, mr.center_lines, mr.sense_lambda)
    for i, s in enumerate(slices):
        assert s.slice_id == data.slice_ids[i]
        assert np.abs(s.reference - data.reference[i]).max() < 1e-5, "reference differs: not the file's seeds"
        x_est = modality.estimate(s.measurement)
        assert np.abs(x_est - data.x_est[i]).max() < 1e-3 * np.abs(data.x_est[i]).max(), "x_est differs"
    return slices


@torch.no_grad()
def network(models: dict, key: str, images: np.ndarray) -> np.ndarray:
    """One network on (N, 2, H, W) images in prepared units."""
    return models[key](torch.from_numpy(np.ascontiguousarray(images, np.float32))).numpy()


def half_priors(run: str, models: dict, slices, data, lamda_sense: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per validation slice, the network output from each half's data only: (z from half 1, z from half 2)."""
    if run == "consensus":
        z1, z2 = network(models, "f1", data.x1), network(models, "f2", data.x2)
    elif run == "noise2noise":
        z1, z2 = network(models, "f", data.x1), network(models, "f", data.x2)
    else:  # Noise2Clean takes SENSE images: the SENSE of each half's lines
        sense_half = lambda m, lines: to_channels(sense(m.kspace, m.maps, lines, lamda_sense), m.scale)  # noqa: E731
        z1 = network(models, "f", np.stack([sense_half(s.measurement, s.measurement.design.half1) for s in slices]))
        z2 = network(models, "f", np.stack([sense_half(s.measurement, s.measurement.design.half2) for s in slices]))
    return [(from_channels(a, s.measurement.scale), from_channels(b, s.measurement.scale))
            for a, b, s in zip(z1, z2, slices, strict=True)]


def choose_lamda(run: str, models: dict, slices, data, lamda_sense: float) -> tuple[float, list[float]]:
    """lam minimising the held-out-line prediction error on the validation slices (both directions)."""
    total = np.zeros(len(LAMDAS))
    for s, (z1, z2) in zip(slices, half_priors(run, models, slices, data, lamda_sense), strict=True):
        m, d = s.measurement, s.measurement.design
        outer1, outer2 = d.half1 & ~d.half2, d.half2 & ~d.half1
        total += heldout_error(m.kspace, m.maps, d.half1, outer2, z1, LAMDAS, d.weight_half2)
        total += heldout_error(m.kspace, m.maps, d.half2, outer1, z2, LAMDAS, d.weight_half1)
    return LAMDAS[int(np.argmin(total))], total.tolist()


def consistent(images: np.ndarray, slices, lamda: float) -> np.ndarray:
    """Data consistency of (N, 2, H, W) outputs with each slice's 4x data."""
    out = []
    for image, s in zip(images, slices, strict=True):
        m = s.measurement
        x = data_consistency(m.kspace, m.maps, m.design.mask, from_channels(image, m.scale), lamda)
        out.append(to_channels(x, m.scale))
    return np.stack(out)


def test_metrics(data, images: dict[str, np.ndarray]) -> dict:
    summary = evaluate(dataclasses.replace(data, baselines={**data.baselines, **images})).summary()
    return {k: {"rmse_1e-3": v["rmse_1e-3"]["mean"], "ssim_%": 100 * v["ssim"]["mean"]} for k, v in summary.items()}


def measure(name: str, out: Path, train_seconds: dict) -> dict:
    start = time.perf_counter()
    _, val_path, test_path = prepared_files(name, out)
    val, test = read_prepared(val_path), read_prepared(test_path)
    val_slices, test_slices = measurements(name, "val", val_path), measurements(name, "test", test_path)
    lamda_sense = protocol_for(name).data.sense_lambda
    images = {"half x1": test.x1, "half x2": test.x2, "(x1+x2)/2": 0.5 * (test.x1 + test.x2)}
    chosen, oracle = {}, {}
    for label, (run, variant) in OUTPUTS.items():
        _, models = load_trained(out / name / "runs" / run, "cpu")
        if run not in chosen:
            lamda, curve = choose_lamda(run, models, val_slices, val, lamda_sense)
            chosen[run] = {"lamda": lamda, "validation_heldout_error": curve}
        with torch.no_grad():
            z = methods.output(run, models, *(torch.from_numpy(a) for a in (test.x1, test.x2, test.x_est)),
                               variant).numpy()
        images[label] = z
        images[f"{label} + DC"] = consistent(z, test_slices, chosen[run]["lamda"])
        if variant != "z":  # for information only: the test error of every lam (not used to choose)
            oracle[label] = {str(lam): test_metrics(test, {"x": consistent(z, test_slices, lam)})["x"]
                             for lam in LAMDAS[:-1]}
    return {"sampling": name, "variable_density": SAMPLING[name][0], "center_lines": SAMPLING[name][1],
            "train_seconds": train_seconds, "lamdas": LAMDAS, "chosen": chosen, "test": test_metrics(test, images),
            "test_by_lamda_not_used_for_choice": oracle, "dc_seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "mr_method_ablation")
    parser.add_argument("--sampling", nargs="+", default=["d0"], choices=list(SAMPLING))
    args = parser.parse_args()
    path = RESULTS / "mr_method_ablation.json"
    for name in args.sampling:
        record = measure(name, args.out, train_runs(name, args.out))
        print(json.dumps({k: record[k] for k in ("sampling", "test")}, indent=1), flush=True)
        records = json.loads(path.read_text())["runs"] if path.exists() else []
        records = [r for r in records if r["sampling"] != name] + [record]
        write_result(path.name, {"protocol": demo_protocol("mr").describe(), "runs": records})


if __name__ == "__main__":
    main()

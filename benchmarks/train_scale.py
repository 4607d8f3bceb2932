"""Benchmark: training on more data than today's demo, lazily read vs in memory; preparation with --jobs.

1. Prepares the CT demo's training slices (218 slices of 11 patients, 128^2, the demo's split) with
   ``--jobs 1`` and ``--jobs 2`` (slices/s; the two files' arrays are compared).
2. Repeats that file with new patient and slice ids into folders of 1, 4, 8 and 16 files (1x ... 16x
   the demo's training data).
3. Runs ``tomoconsensus train --max-steps 30`` (consensus, the demo's network and patches) on each folder
   with ``--data-in-memory no`` and ``yes``, each in its own process measured by GNU time (``/usr/bin/time
   -v``: maximum resident set size; else ``resource.getrusage`` of the child), and reads steps/s from the
   run's summary.json (the training loop only, without start-up).

Writes benchmarks/results/train_scale.json (whole). Every process runs with OMP_NUM_THREADS=1.

    .venv/bin/python benchmarks/train_scale.py [--scales 1 4 8 16] [--steps 30] [--work DIR] [--shared-note TEXT]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from tomoconsensus.ct.demo import ct_split
from tomoconsensus.ct.pipeline import ct_modality, fan_beam_geometry, simulated_source, write_ct
from tomoconsensus.study.runner import demo_protocol

from common import write_result

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """[train]
method = "consensus"
base_features = {p.base_features}
depth = {p.depth}
patch_size = {p.patch_size}
batch_size = {p.batch_size}
learning_rate = {p.learning_rate}
patches_per_slice = {p.patches_per_slice}
epochs = 100
checkpoint_every_steps = 1000
log_every_steps = 10
device = "cpu"
"""


def prepare_demo_train(work: Path, jobs: int) -> dict:
    """The CT demo's training file, prepared with ``jobs`` processes; its path and slices/s."""
    data = demo_protocol("ct").data
    name, stack, offset = ct_split(data)[0]
    assert name == "train"
    geom = fan_beam_geometry(data.geometry)
    source = simulated_source(stack, geom, data.dose_fraction, offset, "embedded demo series")
    out = work / f"demo_train_jobs{jobs}.h5"
    start = time.perf_counter()
    write_ct(out, ct_modality(geom, "cpu"), source, offset, progress=False, jobs=jobs, device="cpu")
    seconds = time.perf_counter() - start
    return {"jobs": jobs, "slices": source.n_slices, "seconds": round(seconds, 2),
            "slices_per_s": round(source.n_slices / seconds, 3), "path": out}


def same_arrays(a: Path, b: Path) -> bool:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        return all(np.array_equal(fa[k][()], fb[k][()]) for k in ("x1", "x2", "x_est", "reference", "slice_id"))


def repeated_folder(source: Path, folder: Path, copies: int) -> Path:
    """``copies`` files in ``folder``: the source file with patient and slice ids prefixed ``rK_``."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(copies):
        out = folder / f"r{k:02d}.h5"
        shutil.copyfile(source, out)
        with h5py.File(out, "a") as f:
            for key in ("slice_id", "patient_id"):
                values = [v.decode() if isinstance(v, bytes) else str(v) for v in f[key][()]]
                f[key][...] = np.array([f"r{k:02d}_{v}" for v in values], dtype=object)
    return folder


def measured_run(args: list[str], env: dict) -> tuple[int, float, str]:
    """(peak RSS in KB, wall s, tool) of one child process."""
    gnu_time = Path("/usr/bin/time")
    start = time.perf_counter()
    if gnu_time.exists():
        result = subprocess.run([str(gnu_time), "-v", *args], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-3000:])
        peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
        return peak, wall, "GNU time -v (maximum resident set size)"
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1]), time.perf_counter() - start, "resource.getrusage(RUSAGE_CHILDREN)"


def train_run(folder: Path, mode: str, steps: int, config: Path, runs: Path, env: dict) -> dict:
    run = runs / f"{folder.name}_{mode}"
    args = [sys.executable, "-m", "tomoconsensus", "train", "--data", str(folder), "--config", str(config),
            "--max-steps", str(steps), "--data-in-memory", mode, "--out", str(run)]
    peak_kb, wall, tool = measured_run(args, env)
    summary = json.loads((run / "summary.json").read_text())
    with h5py.File(sorted(folder.glob("*.h5"))[0], "r") as f:
        per_file = int(f["x1"].shape[0])
    files = len(list(folder.glob("*.h5")))
    return {"files": files, "slices": files * per_file, "data_in_memory": mode, "peak_rss_mb": round(peak_kb / 1024, 1),
            "steps": summary["steps"], "steps_per_s": round(summary["steps_per_second"], 3),
            "process_wall_s": round(wall, 1), "rss_tool": tool}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--shared-note", default="", help="how the machine was shared during the run")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="train_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    # the CT demo's training protocol with the 64^2 patches of this benchmark's record (the shared demo patch
    # size before the CT demo chose 32^2)
    protocol = dataclasses.replace(demo_protocol("ct").training, patch_size=64)
    prep = [prepare_demo_train(work, jobs) for jobs in (1, 2)]
    identical = same_arrays(prep[0]["path"], prep[1]["path"])
    config = work / "demo_protocol.toml"
    config.write_text(CONFIG.format(p=protocol))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    rows = []
    for scale in args.scales:
        folder = repeated_folder(prep[0]["path"], work / f"x{scale}", scale)
        for mode in ("no", "yes"):
            rows.append({"scale": scale, **train_run(folder, mode, args.steps, config, work / "runs", env)})
            print(json.dumps(rows[-1]), flush=True)
    pick = {(r["scale"], r["data_in_memory"]): r for r in rows}
    checks = {}
    if (1, "no") in pick and (8, "no") in pick:
        one, eight = pick[(1, "no")], pick[(8, "no")]
        checks = {"lazy_8x_over_1x_peak_rss": round(eight["peak_rss_mb"] / one["peak_rss_mb"], 3),
                  "lazy_8x_over_1x_steps_per_s": round(eight["steps_per_s"] / one["steps_per_s"], 3)}
        checks["rss_at_most_1.3x"] = checks["lazy_8x_over_1x_peak_rss"] <= 1.3
        checks["steps_per_s_within_25_percent"] = abs(checks["lazy_8x_over_1x_steps_per_s"] - 1) <= 0.25
    if (1, "yes") in pick and (8, "yes") in pick:
        ratio = pick[(8, "yes")]["peak_rss_mb"] / pick[(1, "yes")]["peak_rss_mb"]
        checks["in_memory_8x_over_1x_peak_rss"] = round(ratio, 3)
    record = {
        "benchmark": "train_scale",
        "what": f"tomoconsensus train --max-steps {args.steps} (consensus, demo protocol: "
                f"UNet-{protocol.base_features} depth {protocol.depth}, {protocol.patch_size}^2 patches, batch "
                f"{protocol.batch_size}) on 1x..16x the CT demo's training slices (the demo file repeated with new "
                "patient ids, one file per copy in a folder), "
                "--data-in-memory no (lazy, slice cache 256 MB, prefetch) vs yes; preparation of the demo's training "
                "slices with --jobs 1 and 2",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpu_count": os.cpu_count(), "omp_num_threads": 1,
                    "shared": args.shared_note or "not stated"},
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "preparation": [{k: v for k, v in p.items() if k != "path"} for p in prep],
        "preparation_jobs2_arrays_equal_jobs1": identical,
        "training": rows,
        "checks": checks,
    }
    print(write_result("train_scale.json", record))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark: seconds per slice for ESPIRiT, weighted zero-filling and SENSE (SigPy), CPU and GPU.

Uses the shipped real 2-coil phantom and, when ../shared is present, the 8-channel brain.
Writes benchmarks/results/mr_prepare.json. Run: .venv/bin/python benchmarks/mr_prepare.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tomoconsensus.mr.io import read_kspace_file
from tomoconsensus.mr.masks import random_split_mask
from tomoconsensus.mr.recon import espirit_maps, sense, sigpy_device, zero_filled_combination

from common import best_of, write_result

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"twix_gre_phantom_2ch (2 x 160 x 160)": ROOT / "tests" / "data" / "mr" / "twix_gre_phantom_2ch.h5",
            "brain_8ch (8 x 230 x 180)":
                ROOT.parent / "shared" / "data" / "mr" / "auto_espirit_brain8ch" / "brain_clean_8ch.h5"}


def bench(kspace: np.ndarray, device: int) -> dict:
    design = random_split_mask(kspace.shape[-2], np.random.default_rng(0), 4.0, 24)
    under = kspace * design.mask[None, :, None]
    t_esp, maps = best_of(lambda: espirit_maps(under, 24, device), 1)
    t_zf, _ = best_of(lambda: zero_filled_combination(under, maps, design.weight_full))
    t_sense, _ = best_of(lambda: sense(under, maps, design.mask, 0.01, 30, device), 1)
    return {"espirit_s": t_esp, "zero_filled_s": t_zf, "sense_30_iter_s": t_sense}


def main() -> dict:
    result = {"device": "cpu", "datasets": {}}
    gpu = sigpy_device("auto") >= 0
    for name, path in DATASETS.items():
        if not path.exists():
            continue
        kspace = read_kspace_file(path).kspace[0]
        result["datasets"][name] = {"cpu": bench(kspace, -1)}
        if gpu:
            result["datasets"][name]["gpu"] = bench(kspace, 0)
    write_result("mr_prepare.json", result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

"""Benchmark: seconds per 512^2 fan-beam FBP (1152 views) vs ASTRA's CPU backprojection.

Writes benchmarks/results/ct_fbp.json. Run: .venv/bin/python benchmarks/ct_fbp.py
"""

from __future__ import annotations

import dataclasses
import json
import platform

import numpy as np
import torch

from tomoconsensus.ct.protocol import load_geometry
from tomoconsensus.tomo.backends import cuda_available
from tomoconsensus.tomo.fbp import FBP
from tomoconsensus.tomo.projector import AstraProjector

from common import best_of, write_result


def main() -> dict:
    geom = dataclasses.replace(load_geometry("ldct-fanbeam"), n_views=1152, detector_shape="flat")
    x, y = geom.pixel_centers_mm()
    image = np.where(x**2 + y**2 < 150**2, 0.0193, 0).astype(np.float32)
    result = {"geometry": "ldct-fanbeam with 1152 views", "image": "512x512", "torch_threads": torch.get_num_threads(),
              "cpu": platform.processor() or platform.machine()}
    with AstraProjector(geom, kind="line", use_cuda=False) as proj:
        sino = proj.forward(image)
        result["astra_cpu_line_backprojection_s"] = best_of(lambda: proj.adjoint(sino))[0]
    with AstraProjector(geom, kind="strip", use_cuda=False) as proj:
        result["astra_cpu_strip_backprojection_s"] = best_of(lambda: proj.adjoint(sino), 1)[0]
    op = FBP(geom)
    result["tomoconsensus_fbp_cpu_s"] = best_of(lambda: op(sino))[0]
    result["ratio_fbp_to_astra_line_bp"] = result["tomoconsensus_fbp_cpu_s"] / result["astra_cpu_line_backprojection_s"]
    if torch.cuda.is_available():
        gpu_op = FBP(geom, device="cuda")
        gpu_op(sino)
        torch.cuda.synchronize()
        result["tomoconsensus_fbp_cuda_s"] = best_of(lambda: (gpu_op(sino), torch.cuda.synchronize()))[0]
    result["astra_cuda"] = cuda_available()
    write_result("ct_fbp.json", result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

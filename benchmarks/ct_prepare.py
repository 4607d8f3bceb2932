"""Benchmark: seconds per slice of ``prepare ct --geometry ldct-fanbeam`` (512^2, 2304 views, quarter dose).

Times the path the CLI runs (``simulated_slices`` -> ``write_prepared`` with ``CTModality``) on the
first ``--slices`` clinical slices of ../shared/data/ct/tcia_series (a water phantom with inserts when
../shared is missing), as wall and process-CPU seconds per slice, and one slice stage by stage.
``--old`` also times the previous forward projector of the curved detector (ASTRA's CPU line
projector on a 4x oversampled flat detector, resampled) on one slice.

The machine's load average is recorded: on a shared CPU the wall time is not the work; the CPU
seconds are (close to) what an idle machine would need, spread over its cores.

Writes benchmarks/results/ct_prepare.json. Run: .venv/bin/python benchmarks/ct_prepare.py [--slices N] [--old]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tomoconsensus.ct.io import ImageStack, read_images
from tomoconsensus.ct.modality import CTModality
from tomoconsensus.ct.noise import hu_to_mu, simulate_low_dose
from tomoconsensus.ct.protocol import load_geometry
from tomoconsensus.ct.sources import simulated_slices
from tomoconsensus.data.prepared import write_prepared
from tomoconsensus.tomo.curved import CurvedProjector, fbp_operator, forward_projector
from tomoconsensus.tomo.grid import support_channels, to_geometry_grid

from common import write_result

SERIES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ct" / "tcia_series"


def load_stack(n: int) -> tuple[ImageStack, str]:
    """First ``n`` slices of one clinical series, or a synthetic phantom stack without ../shared."""
    files = sorted(SERIES.glob("*.npz"))
    if files:
        stack = read_images(files[0], None)
        return (ImageStack(stack.hu[:n], stack.pixel_spacing_mm[:n], stack.slice_ids[:n], stack.patient_ids[:n]),
                files[0].name)
    y, x = np.mgrid[-256:256, -256:256] * 0.75
    hu = np.where(x**2 / 170**2 + y**2 / 120**2 < 1, 0.0, -1000.0) + np.where((x - 40) ** 2 + y**2 < 20**2, 300, 0)
    return ImageStack(np.repeat(hu[None], n, 0).astype(np.float32), np.full(n, 0.75), [f"phantom{i}" for i in range(n)],
                      ["phantom"] * n), "synthetic water ellipse with a bone insert"


class Clock:
    """Wall and process-CPU seconds since construction."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> dict:
        return {"wall_s": time.perf_counter() - self.wall, "cpu_s": time.process_time() - self.cpu}


def end_to_end(stack: ImageStack, geom, tmp: Path) -> dict:
    modality = CTModality(geom)
    modality.split_and_reconstruct(np.zeros((geom.n_views, geom.n_detectors), np.float32))  # compile (cached)
    clock = Clock()
    write_prepared(tmp / "bench.h5", modality, simulated_slices(stack, geom, 0.25, 0), len(stack.hu), 0, progress=False)
    total = clock.read()
    return {k.replace("_s", "_per_slice_s"): v / len(stack.hu) for k, v in total.items()}


def stages(stack: ImageStack, geom) -> dict:
    """One slice, stage by stage, as ``simulated_slices`` and ``CTModality`` run them."""
    out, mu_w = {}, geom.protocol.mu_water_per_mm
    modality, ref_op = CTModality(geom), fbp_operator(geom)
    n_det = geom.n_detectors if geom.is_curved else support_channels(geom)
    edge = (geom.n_detectors - n_det) // 2
    with forward_projector(dataclasses.replace(geom, n_detectors=n_det), kind="strip",
                           threads=torch.get_num_threads()) as proj:
        clock = Clock()
        hu = to_geometry_grid(stack.hu[0], float(stack.pixel_spacing_mm[0]), geom)
        out["resample_to_grid"] = clock.read()
        clock = Clock()
        clean = np.pad(proj.forward(hu_to_mu(hu, mu_w)), ((0, 0), (edge, edge)))
        kind = getattr(proj, "backend", "astra strip")
        out[f"forward_projection, {kind} ({n_det} of {geom.n_detectors} channels)"] = clock.read()
    clock = Clock()
    sino = simulate_low_dose(clean, geom, 0.25, np.random.default_rng(0))
    out["poisson_noise"] = clock.read()
    clock = Clock()
    modality.split_and_reconstruct(sino)
    out["x1_x2_x_est (filter once, 2 half backprojections)"] = clock.read()
    clock = Clock()
    ref_op(clean)
    out["reference_noiseless_fbp"] = clock.read()
    return out


def old_projector(stack: ImageStack, geom) -> dict:
    """The curved detector's previous forward projector: ASTRA's single-threaded CPU line projector
    on a flat virtual detector 4x finer than the channels, resampled to the curved channels."""
    hu = to_geometry_grid(stack.hu[0], float(stack.pixel_spacing_mm[0]), geom)
    with CurvedProjector(geom, backend="astra", use_cuda=False) as proj:
        clock = Clock()
        proj.forward(hu_to_mu(hu, geom.protocol.mu_water_per_mm))
        return clock.read()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=3, help="slices timed end to end (default 3)")
    parser.add_argument("--old", action="store_true", help="also time the previous forward projector on one slice")
    args = parser.parse_args(argv)
    geom = load_geometry("ldct-fanbeam")
    stack, source = load_stack(args.slices)
    result = {"geometry": "ldct-fanbeam (512x512 @ 0.75 mm, 2304 views, 736 channels)", "dose_fraction": 0.25,
              "source": source, "slices": len(stack.hu), "torch_threads": torch.get_num_threads(),
              "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "load_average_1min_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        result["prepare"] = end_to_end(stack, geom, Path(tmp))
    result["stages_one_slice"] = stages(stack, geom)
    if args.old:
        result["old_forward_projection_astra_one_slice"] = old_projector(stack, geom)
    result["load_average_1min_after"] = os.getloadavg()[0]
    write_result("ct_prepare.json", result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

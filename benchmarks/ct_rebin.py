"""Benchmark: DICOM-CT-PD read + single-slice rebinning + curved FBP, seconds per slice.

A synthetic helical scan of the LDCT size (2304 views per rotation, 736 channels, 64 rows;
``--rotations`` rotations) of a water cylinder is written as implicit-VR DICOM-CT-PD files (line
integrals of the infinite cylinder: 2-D chord / cos(cone angle), enough for timing), then read,
rebinned at ``--slices`` table positions and reconstructed (512^2, x1, x2 and x_est).

Writes benchmarks/results/ct_rebin.json. Run from the repository root:
    PYTHONPATH=. .venv/bin/python benchmarks/ct_rebin.py [--rows 64 --rotations 1.5 --device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tomoconsensus.ct.dicom_pd import read_projections
from tomoconsensus.ct.modality import CTModality
from tomoconsensus.ct.rebin import Rebinner, split_views

from common import best_of, write_result
from tests.ct.dicom_pd_writer import ScanSpec, write_scan


def cylinder_scan(spec: ScanSpec, radius_mm: float = 150.0, mu: float = 0.0193) -> np.ndarray:
    """Line integrals (V, rows, channels) of an infinite water cylinder on the axis."""
    gamma = ((np.arange(spec.n_channels) + 1) - spec.c_col()) * spec.channel_spacing_mm / spec.d0_mm
    chord = 2 * mu * np.sqrt(np.maximum(radius_mm**2 - (spec.rho_mm * np.sin(gamma)) ** 2, 0))
    v = (spec.c_row() - (np.arange(spec.n_rows) + 1)) * spec.row_spacing_mm
    stretch = np.sqrt(1 + (v / spec.d0_mm) ** 2)
    return np.broadcast_to(chord[None, None, :] * stretch[None, :, None],
                           (spec.n_views, spec.n_rows, spec.n_channels)).astype(np.float32)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--rotations", type=float, default=2.0)
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="ct_rebin.json")
    args = parser.parse_args()
    # LDCT-like: 64 x 0.6 mm at the isocentre (1.095 mm at the detector), pitch 0.8
    spec = ScanSpec(n_channels=736, n_rows=args.rows, views_per_turn=2304, n_turns=args.rotations,
                    fan_angle_rad=736 * 1.2858 / 1085.6, row_spacing_mm=1.0946,
                    feed_mm_per_turn=0.8 * args.rows * 0.6, incident_photons=None)
    record = {"scan": f"{spec.n_views} views ({args.rotations} rotations x 2304), 736 channels x {args.rows} rows",
              "device": args.device, "torch_threads": torch.get_num_threads(),
              "cpu": platform.processor() or platform.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_scan(Path(tmp), spec, [], line_integrals_override=cylinder_scan(spec), shuffle_names=False)
        record["write_s"] = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        scan = read_projections(tmp, progress=False)
        record["read_s"] = time.perf_counter() - start
        record["read_cpu_s"] = time.process_time() - cpu
    record["read_ms_per_file"] = 1000 * record["read_s"] / spec.n_views
    rebin = Rebinner(scan, 512, 0.75)
    lo, hi = rebin.z_range_mm()
    zs = np.linspace(lo, hi, args.slices)
    record["z_range_mm"] = [lo, hi]
    cpu = time.process_time()
    record["rebin_s_per_slice"] = best_of(lambda: [rebin(z) for z in zs], 2)[0] / len(zs)
    # CPU seconds too: on a shared machine the wall time measures the other jobs as well
    record["rebin_cpu_s_per_slice"] = (time.process_time() - cpu) / (2 * len(zs))
    geom = rebin.geometry.geom
    x1, x2, _ = split_views(geom.n_views, "auto", scan.ffs_mode)
    ct = CTModality(geom, device=args.device, sources=rebin.geometry.sources, halves=(x1, x2))
    sino = rebin(float(zs[len(zs) // 2]))

    def split_fbps():
        h1, h2 = ct.split(sino)
        out = (ct.reconstruct(h1), ct.reconstruct(h2), ct.estimate(sino))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return out

    cpu = time.process_time()
    record["fbp_x1_x2_xest_s_per_slice"], images = best_of(split_fbps, 1)
    record["fbp_x1_x2_xest_cpu_s_per_slice"] = time.process_time() - cpu  # summed over torch threads
    x, y = geom.pixel_centers_mm()
    centre = images[2][0][x**2 + y**2 < 100**2] * 1000
    record["water_hu_mean_centre"] = float(centre.mean())
    slices_per_patient = 100
    record["total_s_per_slice_for_100_slices"] = (record["read_s"] / slices_per_patient + record["rebin_s_per_slice"]
                                                  + record["fbp_x1_x2_xest_s_per_slice"])
    record["goal_rebin_s_per_slice"] = 1.0
    record["load_average_1min"] = os.getloadavg()[0]
    write_result(args.out, record)
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()

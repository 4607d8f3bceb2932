"""Benchmark: task-based image quality (``tomoconsensus iq``) of the CT demo's networks.

Runs :func:`tomoconsensus.ct.iq.run_iq` on the folder written by ``tomoconsensus demo ct`` (its
test file gives the geometry and dose and the clean reference for the uncertainty check; its
validation file, held-out patients with noisy data only, calibrates the uncertainty map), for FBP,
TV and the consensus, Noise2Noise and Noise2Clean runs::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/iq_demo.py --demo demo_out/ct

Writes benchmarks/results/iq_demo.json (every number, the demo's protocol, wall and CPU time) and
benchmarks/results/iq_demo.md (the tables and the statements docs/iq.md quotes), and the figures
into docs/images/iq_demo/ (all written whole).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tomoconsensus.atomic import write_text_atomic
from tomoconsensus.ct.iq import run_iq
from tomoconsensus.iq.report import figures, iq_json, iq_markdown

from common import RESULTS, write_result

RUNS = {"Consensus": "consensus", "Noise2Noise": "noise2noise", "Noise2Clean": "noise2clean"}
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "images" / "iq_demo"


def statements(methods: dict) -> list[str]:
    """The contrast dependence of f50, the NPS peak shift and the uncertainty calibration, in words, from the
    measured numbers."""
    fbp = methods["FBP"]["nps"]
    lines = []
    for name, m in methods.items():
        f50 = {t["contrast_hu"]: t["f50_per_mm"] for t in m["ttf"]}
        nps = m["nps"]
        peak, mean = nps["peak_frequency_per_mm"], nps["mean_frequency_per_mm"]
        lines.append(f"{name}: f50 {f50[10.0]:.3f} mm⁻¹ at +10 HU, {f50[50.0]:.3f} at +50 HU, {f50[990.0]:.3f} at "
                     f"+990 HU (ratio +990/+10 = {f50[990.0] / f50[10.0]:.2f}; +340/+50 = "
                     f"{f50[340.0] / f50[50.0]:.2f}); NPS peak {peak:.3f} mm⁻¹ "
                     f"({peak / fbp['peak_frequency_per_mm']:.2f} x FBP's), mean frequency "
                     f"{mean:.3f} mm⁻¹ ({mean / fbp['mean_frequency_per_mm']:.2f} x FBP's), "
                     f"noise {nps['noise_hu']:.1f} HU.")
    for name, m in methods.items():
        u, t = m.get("uncertainty"), m.get("uncertainty", {}).get("test")
        if u is None or t is None:
            continue
        lines.append(f"{name} uncertainty: k = {u['scale_k']:.3f} from {u.get('calibration_slices', 0)} held-out noisy "
                     f"slices; on {t['slices']} test slices |error| <= k sigma for {100 * t['coverage_1sigma']:.1f} % "
                     f"and <= 2 k sigma for {100 * t['coverage_2sigma']:.1f} % of body pixels (68.3 / 95.4 % if "
                     f"Gaussian), actual / predicted MSE {t['mse_ratio_actual_over_predicted']:.2f}, block correlation "
                     f"{t['block_correlation']:.2f}.")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo_out/ct"))
    parser.add_argument("--realisations", type=int, default=32)
    parser.add_argument("--tv-realisations", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    runs = {label: args.demo / "runs" / name for label, name in RUNS.items()}
    missing = [str(p) for p in runs.values() if not (p / "model.pt").is_file()]
    if missing:
        print(f"no finished demo runs in {args.demo} ({', '.join(missing)}): run tomoconsensus demo ct first")
        return 1
    start, cpu = time.perf_counter(), time.process_time()
    result = run_iq(args.demo / "ct_test.h5", runs, args.demo / "ct_val.h5", args.realisations, args.seed,
                    with_tv=True, device="cpu", n_tv=args.tv_realisations)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    FIGURES.mkdir(parents=True, exist_ok=True)
    figures(result, FIGURES)
    protocol = json.loads((args.demo / "demo_protocol.json").read_text())
    said = statements(result.methods)
    record = {"benchmark": "iq_demo", "command": "benchmarks/iq_demo.py " + " ".join(argv or sys.argv[1:]),
              "demo_folder": str(args.demo), "demo_protocol": protocol, "runs": {k: str(v) for k, v in runs.items()},
              "wall_seconds": seconds, "cpu_seconds": cpu_seconds, "statements": said, **iq_json(result)}
    path = write_result("iq_demo.json", record)
    md = (f"# iq on the CT demo's networks\n\nWritten by `benchmarks/iq_demo.py` ({seconds / 60:.1f} min wall, "
          f"{cpu_seconds / 60:.1f} min CPU) from `{args.demo}`; figures in `docs/images/iq_demo/`.\n\n"
          + iq_markdown(result) + "\nContrast dependence and noise texture:\n\n"
          + "\n".join(f"- {s}" for s in said) + "\n")
    write_text_atomic(RESULTS / "iq_demo.md", md)
    print(md)
    print(f"wrote {path}, {RESULTS / 'iq_demo.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: wall time and metrics of the full demo (the reduced protocol of `tomoconsensus demo`).

Writes benchmarks/results/demo.json (CT, `make demo`) or demo_mr.json.
Run: .venv/bin/python benchmarks/demo.py [--modality ct|mr] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch

from tomoconsensus.demo import DemoProtocol, run_demo

from common import write_result


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modality", choices=("ct", "mr"), default="ct")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        result = run_demo(args.modality, out, DemoProtocol(), progress=False)
        table = (out / "report" / "metrics.md").read_text()
    record = {"wall_seconds": result["seconds"], "protocol": DemoProtocol().describe(args.modality),
              "metrics_md": table,
              "summary": result["summary"], "story": result["story"], "cpu_cores": os.cpu_count(),
              "device": "cuda" if torch.cuda.is_available() else "cpu", "machine": platform.machine()}
    write_result("demo.json" if args.modality == "ct" else "demo_mr.json", record)
    print(json.dumps({k: record[k] for k in ("wall_seconds", "story")}, indent=2))
    return record


if __name__ == "__main__":
    main()

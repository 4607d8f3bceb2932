"""Photon-counting spectral CT end to end on the shipped CT anatomy, through the study runner:
the spectral demo with a choice of split.

    python examples/spectral/run_pipeline.py OUT_DIR [--quick] [--split views|thinning] [--device cpu]

Runs :func:`tomoconsensus.study.runner.run_study` on the spectral demo's protocol
(``tomoconsensus/spectral/demo.toml``; ``--quick`` its quick protocol), the same code as
``tomoconsensus demo spectral``:

1. count files (the documented schema, docs/spectral.md) are simulated from the CT demo's patients
   (tomoconsensus.spectral.simulate: water/bone from HU, iodine inserts, the shipped 120 kVp spectrum,
   4 energy bins 20-33.2-50-70-120 keV);
2. every file is split (``--split``: odd/even views in every bin, or count thinning) and each bin
   reconstructed by FBP, by the pipeline of ``tomoconsensus prepare spectral``: 4-channel images;
3. Consensus, Noise2Noise and Noise2Clean (and the distilled network) are trained (4-channel UNet),
   applied to the test patients and evaluated on the mean of the bins (report), then per method: the
   RMSE of the 70 keV virtual monoenergetic image against the reference's, and the iodine
   concentration in every insert (OUT_DIR/report/spectral_quality.md and .json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tomoconsensus.study.runner import demo_protocol, run_study, with_data


def run(out_dir: str | Path, quick: bool = False, split: str = "views", device: str = "cpu",
        progress: bool = True) -> dict:
    """Steps 1-3 of the module docstring; returns the metrics and the spectral table."""
    out_dir = Path(out_dir)
    result = run_study("spectral", out_dir, with_data(demo_protocol("spectral", quick), split=split), device,
                       progress)
    table = json.loads((out_dir / "report" / "spectral_quality.json").read_text())
    return {"summary": result["summary"], "spectral_quality": table}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--split", choices=("views", "thinning"), default="views")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    run(args.out, args.quick, args.split, args.device)

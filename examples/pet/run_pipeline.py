"""PET end to end on the shipped CT anatomy, through the study runner: the PET demo with options.

    python examples/pet/run_pipeline.py OUT_DIR [--quick] [--recon fbp|osem] [--prepare-only] [--device cpu]

Runs :func:`tomoconsensus.study.runner.run_study` on the PET demo's protocol
(``tomoconsensus/pet/demo.toml``; ``--quick`` its quick protocol), the same code as
``tomoconsensus demo pet``:

1. 2-D FDG-like prompts are simulated from the CT demo's patients (tomoconsensus.pet.simulate: SUV
   and 511-keV attenuation from HU classes, hot lesions of SUV 4, detector blur, 3e5 prompts per
   slice, scatter and randoms) and written as prompt files (the documented schema, docs/pet.md);
2. each file's prompts are thinned binomially and reconstructed (x1, x2, x_est) by the pipeline of
   ``tomoconsensus prepare pet``, with ``--recon`` (corrected FBP or OSEM);
3. Consensus, Noise2Noise and Noise2Clean (and the distilled network) are trained, applied to the
   test patients and evaluated against the noiseless FBP reference (report);
4. the PET table: lesion SUVmean/SUVmax bias, NEMA contrast recovery, background variability and
   CoV (OUT_DIR/report/pet_quality.md and .json).

``--prepare-only`` stops after step 2 and evaluates x_est alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tomoconsensus.study.runner import demo_protocol, run_study, with_data

METHODS = ("consensus", "noise2noise", "noise2clean", "distill")


def run(out_dir: str | Path, quick: bool = False, recon: str = "fbp", device: str = "cpu", progress: bool = True,
        methods: tuple[str, ...] = METHODS) -> dict:
    """Steps 1-4 of the module docstring; ``methods=()`` evaluates x_est alone. Returns the metrics."""
    out_dir = Path(out_dir)
    protocol = with_data(demo_protocol("pet", quick), recon=recon)
    result = run_study("pet", out_dir, protocol, device, progress, methods=methods)
    table = json.loads((out_dir / "report" / "pet_quality.json").read_text())
    return {"summary": result["summary"], "pet_quality": table}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--recon", choices=("fbp", "osem"), default="fbp")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prepare-only", action="store_true", help="no training: evaluate x_est only")
    args = parser.parse_args()
    run(args.out, args.quick, args.recon, args.device, methods=() if args.prepare_only else METHODS)

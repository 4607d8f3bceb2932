"""Write the MR demo's simulated k-space and training config, one .npz per patient, for `prepare mr`.

No openly licensed multi-slice multi-coil k-space could be shipped, so this example makes some from
the package's real CT slices (CC BY 4.0) exactly as ``tomoconsensus demo mr`` does, with the demo's
protocol (``tomoconsensus/mr/demo.toml``, read by the study runner): T1-weighted-like contrast, smooth
background phase, the scanner-like simulation (a 15-channel ring coil with correlated noise, SNR 30,
2x readout oversampling, pre-whitened from its noise scan and compressed to 8 virtual coils;
docs/mr-simulation.md, tomoconsensus.mr.simulate) and the demo's patient split (training and
validation anatomy of the TCIA series, test patients of COVID-19-NY-SBU). Training slices are also
written flipped (separate volumes). ``--quick`` takes the demo's quick protocol (1 slice per training
patient, 64^2, 6 coils); ``--matrix`` and ``--coils`` override either.

    python examples/mr/make_shipped_kspace.py OUT_DIR [--quick] [--matrix 128] [--coils 15]
    -> OUT_DIR/{train,val,test}/<patient>.npz with kspace (slices, coils, ky, kx) complex64
    -> OUT_DIR/train.toml: the demo's training protocol as a run config (tomoconsensus train --config)

Then run examples/mr/run_paper_protocol.sh on it (see that script) with CONFIG=OUT_DIR/train.toml and
CENTER_LINES set to the demo's centre lines (printed).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from tomoconsensus.atomic import atomic_path, write_text_atomic
from tomoconsensus.mr.demo import mr_demo_volumes, mr_split
from tomoconsensus.study.runner import demo_protocol


def run_config(training) -> str:
    """The demo's training values as a ``[train]`` run config (method and device given on the command line)."""
    values = dataclasses.asdict(training)
    lines = [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in values.items()]
    return "# the MR demo's training protocol (tomoconsensus/mr/demo.toml), written by make_shipped_kspace.py\n" \
           "[train]\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--quick", action="store_true", help="the demo's quick protocol")
    parser.add_argument("--matrix", type=int, help="image matrix (default: the protocol's)")
    parser.add_argument("--coils", type=int, help="receive coils simulated (default: the protocol's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    protocol = demo_protocol("mr", args.quick)
    changes = {k: v for k, v in (("matrix", args.matrix), ("coils", args.coils)) if v is not None}
    mr = dataclasses.replace(protocol.data, **changes)
    for name, stack, max_slices, offset in mr_split(mr):
        for volume in mr_demo_volumes(name, stack, max_slices, offset, mr, args.seed):
            target = args.out / name / f"{volume.volume_id}.npz"
            with atomic_path(target) as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, kspace=volume.kspace)
            print(f"wrote {target}: kspace {volume.kspace.shape}")
    write_text_atomic(args.out / "train.toml", run_config(protocol.training))
    print(f"wrote {args.out / 'train.toml'}; prepare with --acceleration {mr.acceleration:g} "
          f"--center-lines {mr.center_lines} (CENTER_LINES={mr.center_lines})")


if __name__ == "__main__":
    main()

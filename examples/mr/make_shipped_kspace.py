"""Write the MR demo's simulated k-space from the shipped anatomy, one .npz per patient, for `prepare mr`.

No openly licensed multi-slice multi-coil k-space could be shipped, so this example makes some from
the package's 12 real CT slices (6 patients, CC BY 4.0): T1-weighted-like contrast, smooth
background phase and, by default, the demo's scanner-like simulation: a 15-channel ring coil with
correlated noise, SNR 30, 2x readout oversampling, pre-whitened from its noise scan and compressed to
8 virtual coils (docs/mr-simulation.md; tomoconsensus.mr.simulate). The
patient split is the demo's. Training patients are also written flipped (separate volumes).

    python examples/mr/make_shipped_kspace.py OUT_DIR [--matrix 128] [--coils 15]
    -> OUT_DIR/{train,val,test}/<patient>.npz with kspace (slices, coils, ky, kx) complex64

Then run examples/mr/run_paper_protocol.sh on it (see that script).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from tomoconsensus.atomic import atomic_path
from tomoconsensus.demo import DemoProtocol, mr_demo_volumes, patient_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--matrix", type=int, default=128)
    parser.add_argument("--coils", type=int, default=DemoProtocol().mr.coils, help="receive coils simulated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    protocol = DemoProtocol()
    mr = dataclasses.replace(protocol.mr, matrix=args.matrix, coils=args.coils)
    for name, stack, max_slices, offset in patient_split(protocol):
        for volume in mr_demo_volumes(name, stack, max_slices, offset, mr, args.seed):
            target = args.out / name / f"{volume.volume_id}.npz"
            with atomic_path(target) as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, kspace=volume.kspace)
            print(f"wrote {target}: kspace {volume.kspace.shape}")


if __name__ == "__main__":
    main()

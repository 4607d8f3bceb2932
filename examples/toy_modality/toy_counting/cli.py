"""``tomoconsensus prepare counting --counts FILE.npz --scan-time-s T --out PREPARED.h5``.

FILE.npz holds ``counts`` (slices, H, W), non-negative integer events per pixel, and optionally
``reference`` (slices, H, W), the activity in events per second (for ``evaluate``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tomoconsensus.atomic import check_output_file
from tomoconsensus.cli_types import NON_NEGATIVE_INT, POSITIVE
from tomoconsensus.errors import InputError
from tomoconsensus.modality import Slice
from toy_counting.modality import UNIT_SCALE, CountingModality


def read_counts(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``counts`` (slices, H, W) int64 and ``reference`` (slices, H, W) or None; InputError naming the field."""
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise InputError(path, "file", "a .npz file with 'counts' (and optionally 'reference')", exc) from None
    counts = arrays.get("counts")
    if counts is None or counts.ndim != 3 or counts.dtype.kind not in "iu" or (counts < 0).any():
        raise InputError(path, "counts", "non-negative integer events, shape (slices, H, W)",
                         None if counts is None else f"{counts.dtype} {counts.shape}")
    reference = arrays.get("reference")
    if reference is not None and (reference.shape != counts.shape or not np.isfinite(reference).all()):
        raise InputError(path, "reference", f"finite activities of shape {counts.shape}", reference.shape)
    return counts.astype(np.int64), reference


def prepare(args: argparse.Namespace) -> None:
    check_output_file(args.out, [args.counts], args.overwrite)
    counts, reference = read_counts(args.counts)
    modality = CountingModality(args.scan_time_s)
    slices = (Slice(f"{args.counts.stem}_{i}", args.counts.stem, c,
                    None if reference is None else (reference[i] / UNIT_SCALE)[None].astype(np.float32))
              for i, c in enumerate(counts))
    from tomoconsensus.data.prepared import write_prepared

    print(write_prepared(args.out, modality, slices, len(counts), args.seed, {"input": str(args.counts)},
                         progress=False))


def add_prepare_parser(prep_sub) -> None:
    """Add ``prepare counting`` to the ``prepare`` sub-command's subparsers."""
    p = prep_sub.add_parser("counting", help="toy event counting: binomial thinning of Poisson counts (plugin)")
    p.add_argument("--counts", type=Path, required=True, help=".npz with counts (slices, H, W) [and reference]")
    p.add_argument("--scan-time-s", type=POSITIVE, required=True, help="scan time t in s (activity = counts / t)")
    p.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="seed of the thinning")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=prepare)

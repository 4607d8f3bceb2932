"""``tomoconsensus prepare spectral``: its arguments and handler (found through :mod:`tomoconsensus.registry`).

Light on purpose: ``tomoconsensus --help`` imports this module; the preparation itself
(:mod:`tomoconsensus.spectral.pipeline`, torch, astra) is imported when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoconsensus.atomic import check_output_file
from tomoconsensus.cli_types import NON_NEGATIVE_INT, POSITIVE_INT, device, input_paths, number
from tomoconsensus.devices import DEVICE_HELP


def prepare(args: argparse.Namespace) -> None:
    """Photon-counting bin counts -> one prepared file, one channel per energy bin."""
    from tomoconsensus.spectral.io import read_counts
    from tomoconsensus.spectral.pipeline import spectral_modality, write_spectral

    check_output_file(args.out, input_paths(args.counts), args.overwrite)
    stack = read_counts(args.counts)
    modality = spectral_modality(args.geometry, stack.edges_kev, args.spectrum, args.split, args.reference_water_mm,
                                 args.device)
    print(write_spectral(args.out, modality, stack, args.seed, args.counts, args.max_slices))


def add_prepare_parser(prep_sub) -> None:
    """Add ``prepare spectral`` to the ``prepare`` sub-command's subparsers."""
    sp = prep_sub.add_parser("spectral", help="photon-counting CT bin counts: odd/even views (or binomial "
                             "thinning) per bin, FBP of every bin")
    sp.add_argument("--counts", type=Path, required=True, help="bin counts + air counts (.h5, docs/spectral.md)")
    sp.add_argument("--geometry", required=True, help="fan-beam geometry name or TOML (views x channels of the counts)")
    sp.add_argument("--spectrum", type=Path, default=None, help="CSV energy_kev,fraction summing to 1 (default: the "
                    "shipped 120 kVp spectrum); used for the bins' attenuation matrix")
    sp.add_argument("--split", choices=("views", "thinning"), default="views",
                    help="views: odd/even views in every bin (default); thinning: binomial thinning of the counts")
    sp.add_argument("--reference-water-mm", type=number(float, 0, low_open=False, what="a water path >= 0 in mm"),
                    default=200.0, help="water path at which the bins are linearised (typical body path)")
    sp.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="seed of the thinning")
    sp.add_argument("--max-slices", type=POSITIVE_INT, default=None, help="only the first N slices")
    sp.add_argument("--device", type=device, default="auto", help=DEVICE_HELP)
    sp.add_argument("--out", type=Path, required=True)
    sp.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    sp.set_defaults(func=prepare)

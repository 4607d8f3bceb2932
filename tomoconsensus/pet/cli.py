"""``tomoconsensus prepare pet``: its arguments and handler (found through :mod:`tomoconsensus.registry`).

Light on purpose: ``tomoconsensus --help`` imports this module; the preparation itself
(:mod:`tomoconsensus.pet.pipeline`, torch, astra) is imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tomoconsensus.cli_types import NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT
from tomoconsensus.errors import InputError


def prepare(args: argparse.Namespace) -> None:
    """Prompt sinograms or mMR list-mode -> one prepared file of thinned (or time-frame) halves."""
    from tomoconsensus.pet.pipeline import pet_modality, read_pet_input, write_pet

    if args.split == "time-frames" and args.frame_s is None:
        raise InputError("--frame-s", "frame-s", "a frame length in s with --split time-frames", "missing")
    for flag, value in (("--frame-s", args.frame_s), ("--half-life-s", args.half_life_s)):
        if args.split == "thinning" and value is not None:
            raise InputError(flag, flag.lstrip("-"), "only with --split time-frames", f"{value:g} with thinning")
    if args.keep_measurement and args.listmode is None:
        raise InputError("--keep-measurement", "keep-measurement", "only with --listmode (halves assigned event by "
                         "event)", "--prompts")
    source = args.listmode or args.prompts
    stack, frames, acquisition = read_pet_input(args.prompts, args.listmode, args.split, args.frame_s,
                                                args.half_life_s, args.seed, args.out, args.overwrite)
    modality = pet_modality(stack, args.image_size, args.pixel_size_mm, args.recon, args.osem_iterations,
                            args.osem_subsets, frames)
    print(write_pet(args.out, modality, stack, args.seed, source, args.max_slices, acquisition=acquisition,
                    keep_measurement=args.keep_measurement))
    if acquisition is not None and acquisition.note:  # after the write: a refusal stays one line
        print(acquisition.note, file=sys.stderr)


def add_prepare_parser(prep_sub) -> None:
    """Add ``prepare pet`` to the ``prepare`` sub-command's subparsers."""
    pet = prep_sub.add_parser("pet", help="2-D PET prompts: binomial thinning (or time frames), corrected FBP "
                              "(or OSEM) of each half, scaled, and of all prompts")
    source = pet.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompts", type=Path, help="prompt sinograms + factors (.h5/.npz, docs/pet.md)")
    source.add_argument("--listmode", type=Path, help="Siemens Biograph mMR list-mode: the Interfile header "
                        "(*.l.hdr) naming the PETLINK 32-bit .l file (docs/pet.md)")
    pet.add_argument("--image-size", type=POSITIVE_INT, required=True, help="reconstruction grid N (N x N pixels)")
    pet.add_argument("--pixel-size-mm", type=POSITIVE, required=True)
    pet.add_argument("--recon", choices=("fbp", "osem"), default="fbp", help="fbp: linear, unbiased (default); "
                     "osem: non-negative, biased in cold regions")
    pet.add_argument("--osem-iterations", type=POSITIVE_INT, default=4)
    pet.add_argument("--osem-subsets", type=POSITIVE_INT, default=8)
    pet.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="seed of the binomial thinning")
    pet.add_argument("--split", choices=("thinning", "time-frames"), default="thinning",
                     help="thinning: random assignment of the prompts, exact (default); time-frames: even / odd "
                     "frames of list-mode events with times, exact only for a static tracer (docs/pet.md)")
    pet.add_argument("--frame-s", type=POSITIVE, default=None, help="frame length in s (--split time-frames)")
    pet.add_argument("--half-life-s", type=POSITIVE, default=None, help="decay half-life in s in the halves' "
                     "weights, e.g. 6586.2 for F-18 (--split time-frames; default: the --listmode header's, "
                     "else no decay correction)")
    pet.add_argument("--keep-measurement", action="store_true", help="--listmode: also store each plane's half "
                     "prompts and delayeds under /measurement (docs/prepared-format.md)")
    pet.add_argument("--max-slices", type=POSITIVE_INT, default=None, help="only the first N slices")
    pet.add_argument("--out", type=Path, required=True)
    pet.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    pet.set_defaults(func=prepare)

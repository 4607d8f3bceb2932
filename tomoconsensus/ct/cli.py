"""``tomoconsensus prepare ct``: its arguments and handler (found through :mod:`tomoconsensus.registry`).

Light on purpose: ``tomoconsensus --help`` imports this module; the preparation itself
(:mod:`tomoconsensus.ct.pipeline`, torch, astra) is imported when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoconsensus.atomic import check_output_file
from tomoconsensus.cli_types import NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, device, input_paths, number
from tomoconsensus.ct.protocol import SIMULATION_REFERENCES
from tomoconsensus.devices import DEVICE_HELP
from tomoconsensus.errors import InputError
from tomoconsensus.signals import StopRequest


def prepare(args: argparse.Namespace) -> None:
    """Clean images (simulated dose) or measured sinograms -> one prepared file (``--projections``: raw scans)."""
    from tomoconsensus.ct.io import read_images, read_sinograms
    from tomoconsensus.ct.pipeline import (
        ct_modality,
        fan_beam_geometry,
        measured_source,
        simulated_source,
        tv_choice,
        write_ct,
    )

    if args.projections:
        return prepare_projections(args)
    if args.geometry is None:
        raise InputError("--geometry", "geometry", "a geometry name or TOML path (required with --images/--sinograms)")
    if args.dose_fraction is None:
        args.dose_fraction = 0.25
    geometry_file = Path(args.geometry) if Path(args.geometry).exists() else None
    check_output_file(args.out, input_paths(args.images, args.sinograms, args.tv_val, geometry_file), args.overwrite)
    split = {"auto": "views", "odd-even": "views", "thinning": "thinning"}.get(args.split)
    if split is None or (split == "thinning" and not args.images):
        raise InputError("--split", "split", "auto, odd-even or thinning with --images (thinning needs the readings "
                         "before the log; measured line-integral sinograms cannot be thinned)", args.split)
    geom = fan_beam_geometry(args.geometry)
    if args.images:
        source = simulated_source(read_images(args.images, args.pixel_spacing_mm), geom, args.dose_fraction,
                                  args.seed, args.images, args.reference, args.max_slices, counts=split == "thinning")
    else:
        source = measured_source(read_sinograms(args.sinograms, geom), args.sinograms, args.max_slices)
    validation = None
    if args.tv_val is not None:  # the validation patient, whose reference may tune a baseline
        if not args.tv or Path(args.tv_val).resolve() == Path(args.images or args.sinograms).resolve():
            raise InputError(args.tv_val, "--tv-val", "with --tv --tv-lam auto, the validation patient's data "
                             "(not the data being prepared)")
        validation = (simulated_source(read_images(args.tv_val, args.pixel_spacing_mm), geom, args.dose_fraction,
                                       args.seed + 1, args.tv_val, args.reference) if args.images
                      else measured_source(read_sinograms(args.tv_val, geom), args.tv_val))
    tv, tuning = tv_choice(args.tv_lam, args.tv_iter, geom, validation, args.tv_val_slices) if args.tv else (None, None)
    if tuning is not None:
        print(f"TV weight {tuning.lam:.3g} ({tuning.choice()}):\n{tuning.markdown()}")
    print(write_ct(args.out, ct_modality(geom, args.device, split), source, args.seed, tv, jobs=args.jobs,
                   device=args.device, tv_tuning=tuning))


def prepare_projections(args: argparse.Namespace) -> None:
    """``--projections``: DICOM-CT-PD raw helical scans, rebinned and reconstructed per table position."""
    from tomoconsensus.ct.protocol import load_geometry
    from tomoconsensus.ct.raw import parse_z_list, projection_source
    from tomoconsensus.data.prepared import write_prepared
    from tomoconsensus.devices import torch_device

    if args.z_mm is None:
        raise InputError("--z-mm", "z-mm", "table positions to reconstruct with --projections "
                         "('120,130', '100:200:5' or 'all:5')")
    if args.tv:
        raise InputError("--tv", "tv", "no --tv with --projections (per-view sources are not in the TV projector)")
    if args.split == "thinning":
        raise InputError("--split", "split", "a view split with --projections (auto, odd-even, ffs-blocks, "
                         "random-pairs); the count-domain split is for --images so far", "thinning")
    check_output_file(args.out, input_paths(args.projections, args.reference_projections), args.overwrite,
                      read_folders=[p for p in (args.projections, args.reference_projections) if p is not None])
    parse_z_list(args.z_mm, (0.0, 0.0))  # syntax checked before the (long) read
    noise_geometry = load_geometry(args.geometry or "ldct-fanbeam")  # electronic noise for --dose-fraction
    # signals set a flag, checked between files and slices: never raised inside the Numba backprojection
    with StopRequest(kept="no partial output was left") as stop:
        source = projection_source(args.projections, args.z_mm, args.image_size, args.pixel_size_mm,
                                   args.split, 1.0 if args.dose_fraction is None else args.dose_fraction,
                                   noise_geometry.protocol.electronic_noise_std, args.seed,
                                   args.reference_projections, torch_device(args.device), stop_check=stop.check)
        summary = write_prepared(args.out, source.modality, source.slices, source.n_slices, args.seed, source.attrs)
    print(summary)


def add_prepare_parser(prep_sub) -> None:
    """Add ``prepare ct`` to the ``prepare`` sub-command's subparsers."""
    ct = prep_sub.add_parser("ct", help="fan-beam CT: odd/even views, Hann FBP of each half and of all views")
    src = ct.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", type=Path, help="clean images in HU: DICOM folder/file or .npy/.npz stack")
    src.add_argument("--sinograms", type=Path, help="measured line-integral sinograms (.h5, see docs)")
    src.add_argument("--projections", type=Path, help="folder of DICOM-CT-PD raw projections (helical scan)")
    ct.add_argument("--geometry", help="geometry name (geometry/NAME.toml) or TOML path; with --projections "
                    "only its electronic noise is used (default ldct-fanbeam)")
    ct.add_argument("--dose-fraction", type=number(float, 0, 1, what="a dose fraction in (0, 1]"), default=None,
                    help="simulated dose / full dose (default 0.25 for --images, 1 = as measured for --projections)")
    ct.add_argument("--z-mm", help="--projections: table positions, '120,130', 'start:stop:step' or 'all:step' (mm)")
    ct.add_argument("--image-size", type=POSITIVE_INT, default=512, help="--projections: N x N grid (default 512)")
    ct.add_argument("--pixel-size-mm", type=POSITIVE, default=0.75, help="--projections: pixel size (default 0.75)")
    ct.add_argument("--reference-projections", type=Path, help="--projections: full-dose scan for the reference")
    ct.add_argument("--split", default="auto", choices=("auto", "odd-even", "ffs-blocks", "random-pairs", "thinning"),
                    help="auto: odd/even views (--images/--sinograms), FFS-cycle blocks for flying-focal-spot "
                    "--projections; thinning (--images): binomial thinning of every reading's counts, all views "
                    "in each half (the split whose held-out loss tracks the clean error, docs/method.md)")
    ct.add_argument("--reference", default="noiseless-fbp", choices=SIMULATION_REFERENCES,
                    help="reference for simulated data (default: FBP of the noiseless sinogram)")
    ct.add_argument("--seed", type=NON_NEGATIVE_INT, default=0)
    ct.add_argument("--out", type=Path, required=True)
    ct.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    ct.add_argument("--tv", action="store_true", help="also compute the TV baseline (slow on CPU)")
    ct.add_argument("--tv-lam", type=lambda t: t if t == "auto" else POSITIVE(t), default=3e-4,
                    help="TV weight (default 3e-4), or auto: the weight of a log-spaced grid 1e-4..1e-2 with the "
                    "lowest RMSE against --tv-val's reference")
    ct.add_argument("--tv-val", type=Path, default=None, help="with --tv-lam auto: the validation patient's clean "
                    "images (with --images) or sinograms with references (with --sinograms); never test patients")
    ct.add_argument("--tv-val-slices", type=POSITIVE_INT, default=4, help="validation slices scored (default 4)")
    ct.add_argument("--tv-iter", type=POSITIVE_INT, default=50)
    ct.add_argument("--pixel-spacing-mm", type=POSITIVE, default=None, help="for .npy stacks without spacing")
    ct.add_argument("--max-slices", type=POSITIVE_INT, default=None, help="only the first N slices")
    ct.add_argument("--jobs", type=POSITIVE_INT, default=1, help="--images/--sinograms: N processes over the "
                    "slices (the file is the one --jobs 1 writes)")
    ct.add_argument("--device", type=device, default="auto", help=f"torch device for the FBP: {DEVICE_HELP}")
    ct.set_defaults(func=prepare)

"""Command line: ``tomoconsensus prepare | train | distill | denoise | evaluate | iq | demo``.

Every sub-command prints a short summary at the end; errors in the input are reported as one
line naming the file, the field and what was expected (exit code 2), without a traceback. Outputs
never replace an input, nor an existing file unless ``--overwrite``; an output another command is
writing is refused "in use" (:mod:`tomoconsensus.claims`); a full disk is one line (exit 2). Ctrl-C
and SIGTERM stop with one line (exit 130 / 143), leaving no partial output; ``train`` saves a
checkpoint first.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from tomoconsensus.atomic import (
    check_apart,
    check_output_dir,
    check_output_file,
    check_writable_folder,
    is_no_space,
    no_space,
    same_file,
)
from tomoconsensus.choices import ALL_VARIANTS, CT_REFERENCES, METHODS
from tomoconsensus.cli_types import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    device,
    lamda_or_auto,
    number,
)
from tomoconsensus.devices import DEVICE_HELP
from tomoconsensus.errors import InputError, Interrupted, RunError, one_line
from tomoconsensus.signals import StopRequest, terminate_as_exception


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's contract: a usage error is one line on stderr, exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


# the names the parsers below use (the parsers live in cli_types)
_number = number
_POSITIVE_INT, _NON_NEGATIVE_INT, _POSITIVE, _NON_NEGATIVE = POSITIVE_INT, NON_NEGATIVE_INT, POSITIVE, NON_NEGATIVE
_lamda_or_auto, _device = lamda_or_auto, device


def _inputs(*paths) -> list[Path]:
    return [Path(p) for p in paths if p is not None]


def _prepare_ct(args: argparse.Namespace) -> None:
    from tomoconsensus.ct.io import read_images, read_sinograms
    from tomoconsensus.pipelines.ct import (
        ct_modality,
        fan_beam_geometry,
        measured_source,
        simulated_source,
        tv_choice,
        write_ct,
    )

    if args.projections:
        return _prepare_ct_projections(args)
    if args.geometry is None:
        raise InputError("--geometry", "geometry", "a geometry name or TOML path (required with --images/--sinograms)")
    if args.dose_fraction is None:
        args.dose_fraction = 0.25
    geometry_file = Path(args.geometry) if Path(args.geometry).exists() else None
    check_output_file(args.out, _inputs(args.images, args.sinograms, args.tv_val, geometry_file), args.overwrite)
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


def _prepare_ct_projections(args: argparse.Namespace) -> None:
    from tomoconsensus.ct.raw import parse_z_list, projection_source
    from tomoconsensus.data.prepared import write_prepared
    from tomoconsensus.devices import torch_device
    from tomoconsensus.geometry import load_geometry

    if args.z_mm is None:
        raise InputError("--z-mm", "z-mm", "table positions to reconstruct with --projections "
                         "('120,130', '100:200:5' or 'all:5')")
    if args.tv:
        raise InputError("--tv", "tv", "no --tv with --projections (per-view sources are not in the TV projector)")
    if args.split == "thinning":
        raise InputError("--split", "split", "a view split with --projections (auto, odd-even, ffs-blocks, "
                         "random-pairs); the count-domain split is for --images so far", "thinning")
    check_output_file(args.out, _inputs(args.projections, args.reference_projections), args.overwrite,
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


def _prepare_mr(args: argparse.Namespace) -> None:
    from tomoconsensus.mr.io import read_kspace
    from tomoconsensus.pipelines.mr import mr_modality, write_mr

    check_output_file(args.out, _inputs(args.kspace), args.overwrite, read_folders=[args.kspace])
    modality = mr_modality(args.acceleration, args.center_lines, args.sense_lambda, args.device)
    print(write_mr(args.out, modality, read_kspace(args.kspace), args.seed, args.kspace, args.variable_density,
                   keep_measurement=args.keep_measurement, calib_width=args.calib_width,
                   virtual_coils=args.virtual_coils))


def _prepare_pet(args: argparse.Namespace) -> None:
    from tomoconsensus.pipelines.pet import pet_modality, read_pet_input, write_pet

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


def _prepare_spectral(args: argparse.Namespace) -> None:
    from tomoconsensus.pipelines.spectral import spectral_modality, write_spectral
    from tomoconsensus.spectral.io import read_counts

    check_output_file(args.out, _inputs(args.counts), args.overwrite)
    stack = read_counts(args.counts)
    modality = spectral_modality(args.geometry, stack.edges_kev, args.spectrum, args.split, args.reference_water_mm,
                                 args.device)
    print(write_spectral(args.out, modality, stack, args.seed, args.counts, args.max_slices))


def _add_prepare_spectral_parser(prep_sub) -> None:
    sp = prep_sub.add_parser("spectral", help="photon-counting CT bin counts: odd/even views (or binomial "
                             "thinning) per bin, FBP of every bin")
    sp.add_argument("--counts", type=Path, required=True, help="bin counts + air counts (.h5, docs/spectral.md)")
    sp.add_argument("--geometry", required=True, help="fan-beam geometry name or TOML (views x channels of the counts)")
    sp.add_argument("--spectrum", type=Path, default=None, help="CSV energy_kev,fraction summing to 1 (default: the "
                    "shipped 120 kVp spectrum); used for the bins' attenuation matrix")
    sp.add_argument("--split", choices=("views", "thinning"), default="views",
                    help="views: odd/even views in every bin (default); thinning: binomial thinning of the counts")
    sp.add_argument("--reference-water-mm", type=_number(float, 0, low_open=False, what="a water path >= 0 in mm"),
                    default=200.0, help="water path at which the bins are linearised (typical body path)")
    sp.add_argument("--seed", type=_NON_NEGATIVE_INT, default=0, help="seed of the thinning")
    sp.add_argument("--max-slices", type=_POSITIVE_INT, default=None, help="only the first N slices")
    sp.add_argument("--device", type=_device, default="auto", help=DEVICE_HELP)
    sp.add_argument("--out", type=Path, required=True)
    sp.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    sp.set_defaults(func=_prepare_spectral)


def _train_overrides(args: argparse.Namespace) -> dict:
    """Run-config values given on the command line (``train`` and ``distill``)."""
    return {"epochs": args.epochs, "max_steps": args.max_steps, "device": args.device,
            "seed": args.seed, "base_features": args.base_features, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "beta_w": args.beta_w, "beta_r": args.beta_r,
            "tie_networks": True if args.tie_networks else None}


def _check_val(args: argparse.Namespace) -> None:
    if not args.out.is_file():  # a file is no run folder (refused as such); a folder is apart from the inputs
        check_apart(args.out, [*(("--data", p) for p in args.data or []), *(("--val", p) for p in args.val or []),
                               ("--teacher", getattr(args, "teacher", None))])
    for val in args.val or []:
        if any(same_file(val, data) for data in args.data):
            raise InputError(val, "--val", "held-out slices, not the training file (selection on training data "
                             "would keep the epoch that fits the noise best)", "it is --data")


def _one_or_many(paths: list[Path] | None) -> Path | list[Path] | None:
    """``--data A`` as one path (recorded as before), ``--data A B`` as a list."""
    return paths[0] if paths and len(paths) == 1 else paths


def _train(args: argparse.Namespace) -> None:
    from tomoconsensus.train import load_train_config, train

    overrides = {"method": args.method, **_train_overrides(args)}
    _check_val(args)
    config = load_train_config(args.config, overrides)
    print(train(config, _one_or_many(args.data), args.out, _one_or_many(args.val), resume=args.resume,
                overwrite=args.overwrite, data_in_memory=args.data_in_memory, cache_mb=args.cache_mb))


def _distill(args: argparse.Namespace) -> None:
    from tomoconsensus.distill import distill
    from tomoconsensus.train import load_train_config

    _check_val(args)
    config = load_train_config(args.config, {"method": "distill", **_train_overrides(args)})
    print(distill(config, args.teacher, _one_or_many(args.data), args.out, _one_or_many(args.val),
                  resume=args.resume, overwrite=args.overwrite, warm_start=not args.from_scratch,
                  data_in_memory=args.data_in_memory, cache_mb=args.cache_mb))


def _denoise(args: argparse.Namespace) -> None:
    if args.val is not None and args.data_consistency != "auto" and not args.uncertainty:
        raise InputError("--val", "val", "only with --data-consistency auto (it chooses lambda there) or "
                         "--uncertainty (it calibrates the map there)", str(args.val))
    if args.images is not None:
        from tomoconsensus.denoise_images import denoise_images

        for flag, value, needs in (("--variant", args.variant, "the run's one-image variant is used"),
                                   ("--keep-means-mm", args.keep_means_mm, "it needs the prepared file's x_est"),
                                   ("--data-consistency", args.data_consistency, "it needs the prepared file's "
                                    "raw measurement")):
            if value is not None:
                raise InputError(flag, flag.lstrip("-").replace("-", "_"), f"--data, not --images ({needs})", value)
        if args.uncertainty:
            raise InputError("--uncertainty", "uncertainty", "--data (it needs the prepared file's halves x1, x2)",
                             "--images")
        print(denoise_images(args.run, args.images, args.out, args.resample, args.overwrite, args.pixel_spacing_mm,
                             args.batch_size, args.device))
        return
    from tomoconsensus.data.sets import expand_prepared
    from tomoconsensus.denoise import denoise
    from tomoconsensus.runs import RUN_FILES

    check_output_file(args.out, _inputs(*expand_prepared(args.data), *([args.val] if args.val else []),
                                       *(args.run / name for name in RUN_FILES)), args.overwrite,
                      read_folders=[p for p in args.data if p.is_dir()])
    if args.data_consistency == "auto" and args.val is None:
        raise InputError("--data-consistency", "auto", "a held-out noisy file to choose lambda on (--val)", "no --val")
    for flag, given in (("--pixel-spacing-mm", args.pixel_spacing_mm is not None), ("--resample", args.resample)):
        if given:
            raise InputError(flag, flag.lstrip("-").replace("-", "_"), "--images only (a prepared --data file keeps "
                             "its own grid)")
    print(denoise(args.run, _one_or_many(args.data), args.out, args.variant, args.batch_size, args.device, True,
                  args.data_consistency, args.val, args.keep_means_mm, args.uncertainty))


def _evaluate(args: argparse.Namespace) -> None:
    from tomoconsensus.evaluate import evaluate
    from tomoconsensus.report import REPORT_FILES, metrics_markdown, write_report

    results = _named(args.results, "--results")
    runs = {k: Path(v) for k, v in _named(args.runs, "--runs").items()}
    for name, run in runs.items():
        if not (run / "log.jsonl").is_file():
            raise InputError("--runs", name, "a run folder with log.jsonl (written by tomoconsensus train)", str(run))
    check_output_dir(args.out, _inputs(*args.data, *results.values(), *runs.values()), REPORT_FILES, args.overwrite)
    ev = evaluate(_one_or_many(args.data), results)
    _warn_seen_patients(args.data, runs)
    files = write_report(ev, args.out, runs)
    print(metrics_markdown(ev))
    print("wrote " + ", ".join(str(p) for p in files.values()))


def _warn_seen_patients(data: list[Path], runs: dict[str, Path]) -> None:
    """Warn (stderr) when a patient of the evaluated files trained or validated one of the ``runs``."""
    from tomoconsensus.data.sets import expand_prepared, patient_ids
    from tomoconsensus.runinfo import seen_patient_warnings

    patients = sorted(patient_ids(expand_prepared(data)))
    for name, run in runs.items():
        for line in seen_patient_warnings(run, patients, name):
            print(line, file=sys.stderr)


def _iq(args: argparse.Namespace) -> None:
    from tomoconsensus.ct.iq import run_iq
    from tomoconsensus.iq.report import IQ_FILES, iq_markdown, write_iq_report

    runs = {k: Path(v) for k, v in _named(args.runs, "--runs").items()}
    for name in runs:
        if name in ("FBP", "TV"):
            raise InputError("--runs", name, "a name other than FBP and TV (those rows are always reported)")
    check_output_dir(args.out, _inputs(args.data, args.val), IQ_FILES, args.overwrite)
    result = run_iq(args.data, runs, args.val, args.realisations, args.seed, not args.no_tv, args.device,
                    args.tv_realisations)
    files = write_iq_report(result, args.out)
    for name in set(IQ_FILES) - {p.name for p in files}:  # an earlier report's figure not made this time
        (args.out / name).unlink(missing_ok=True)
    print(iq_markdown(result))
    print("wrote " + ", ".join(str(p) for p in files))


def _name_value(text: str, option: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    if not name.strip() or not value:
        raise InputError(option, text, "NAME=PATH with a non-empty name and path")
    return name.strip(), value


def _named(items: list[str] | None, option: str) -> dict[str, str]:
    """NAME=PATH arguments as a dict; a repeated name is refused (it would silently drop one)."""
    out: dict[str, str] = {}
    for name, value in (_name_value(r, option) for r in items or []):
        if name in out:
            raise InputError(option, name, "each name once", "repeated")
        out[name] = value
    return out


def _demo(args: argparse.Namespace) -> None:
    from tomoconsensus.demo import QUICK, DemoProtocol, run_demo

    if args.out.exists() and not args.out.is_dir():
        raise InputError("--out", str(args.out), "a folder for the demo's files", "an existing file")
    check_writable_folder(args.out)
    protocol = QUICK if args.quick else DemoProtocol()
    for modality in ("ct", "mr", "pet", "spectral") if args.modality == "all" else (args.modality,):
        run_demo(modality, args.out / modality, protocol, args.device, overwrite=args.overwrite)


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Data, run folder and run-config overrides shared by ``train`` and ``distill``."""
    parser.add_argument("--data", type=Path, nargs="+", required=True,
                        help="prepared training .h5 files and/or folders of them (e.g. one file per patient)")
    parser.add_argument("--config", type=Path, help="run config TOML (e.g. examples/ct/train.toml)")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--val", type=Path, nargs="+", help="prepared validation .h5 files or folders (held-out "
                        "patients)")
    parser.add_argument("--data-in-memory", choices=("auto", "yes", "no"), default="auto",
                        help="yes: load the data; no: read slices on demand (bounded cache); auto (default): load "
                        "when they take at most 25 %% of the available memory")
    parser.add_argument("--cache-mb", type=_POSITIVE, default=256.0,
                        help="slice cache of data read on demand, MB (default 256; at least two batches' slices)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted run in OUT (checkpoint.pt)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start the run in OUT again from scratch (removes its run files)")
    for name, kind in (("epochs", _POSITIVE_INT), ("max-steps", _NON_NEGATIVE_INT), ("seed", _NON_NEGATIVE_INT),
                       ("base-features", _POSITIVE_INT), ("batch-size", _POSITIVE_INT), ("learning-rate", _POSITIVE),
                       ("beta-w", _NON_NEGATIVE), ("beta-r", _NON_NEGATIVE)):
        parser.add_argument(f"--{name}", type=kind, help="override the config value")
    parser.add_argument("--device", type=_device, help=DEVICE_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tomoconsensus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_prepare_parser(sub)
    _add_train_parser(sub)
    _add_distill_parser(sub)
    _add_denoise_parser(sub)
    _add_evaluate_parser(sub)
    _add_iq_parser(sub)
    _add_demo_parser(sub)
    return parser


def _add_prepare_parser(sub) -> None:
    """``prepare ct | mr | pet``."""
    prep = sub.add_parser("prepare", help="split and reconstruct raw data into a prepared HDF5 dataset")
    prep_sub = prep.add_subparsers(dest="modality", required=True)
    _add_prepare_ct_parser(prep_sub)
    _add_prepare_mr_parser(prep_sub)
    _add_prepare_pet_parser(prep_sub)
    _add_prepare_spectral_parser(prep_sub)


def _add_prepare_ct_parser(prep_sub) -> None:
    ct = prep_sub.add_parser("ct", help="fan-beam CT: odd/even views, Hann FBP of each half and of all views")
    src = ct.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", type=Path, help="clean images in HU: DICOM folder/file or .npy/.npz stack")
    src.add_argument("--sinograms", type=Path, help="measured line-integral sinograms (.h5, see docs)")
    src.add_argument("--projections", type=Path, help="folder of DICOM-CT-PD raw projections (helical scan)")
    ct.add_argument("--geometry", help="geometry name (geometry/NAME.toml) or TOML path; with --projections "
                    "only its electronic noise is used (default ldct-fanbeam)")
    ct.add_argument("--dose-fraction", type=_number(float, 0, 1, what="a dose fraction in (0, 1]"), default=None,
                    help="simulated dose / full dose (default 0.25 for --images, 1 = as measured for --projections)")
    ct.add_argument("--z-mm", help="--projections: table positions, '120,130', 'start:stop:step' or 'all:step' (mm)")
    ct.add_argument("--image-size", type=_POSITIVE_INT, default=512, help="--projections: N x N grid (default 512)")
    ct.add_argument("--pixel-size-mm", type=_POSITIVE, default=0.75, help="--projections: pixel size (default 0.75)")
    ct.add_argument("--reference-projections", type=Path, help="--projections: full-dose scan for the reference")
    ct.add_argument("--split", default="auto", choices=("auto", "odd-even", "ffs-blocks", "random-pairs", "thinning"),
                    help="auto: odd/even views (--images/--sinograms), FFS-cycle blocks for flying-focal-spot "
                    "--projections; thinning (--images): binomial thinning of every reading's counts, all views "
                    "in each half (the split whose held-out loss tracks the clean error, docs/method.md)")
    ct.add_argument("--reference", default="noiseless-fbp", choices=CT_REFERENCES,
                    help="reference for simulated data (default: FBP of the noiseless sinogram)")
    ct.add_argument("--seed", type=_NON_NEGATIVE_INT, default=0)
    ct.add_argument("--out", type=Path, required=True)
    ct.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    ct.add_argument("--tv", action="store_true", help="also compute the TV baseline (slow on CPU)")
    ct.add_argument("--tv-lam", type=lambda t: t if t == "auto" else _POSITIVE(t), default=3e-4,
                    help="TV weight (default 3e-4), or auto: the weight of a log-spaced grid 1e-4..1e-2 with the "
                    "lowest RMSE against --tv-val's reference")
    ct.add_argument("--tv-val", type=Path, default=None, help="with --tv-lam auto: the validation patient's clean "
                    "images (with --images) or sinograms with references (with --sinograms); never test patients")
    ct.add_argument("--tv-val-slices", type=_POSITIVE_INT, default=4, help="validation slices scored (default 4)")
    ct.add_argument("--tv-iter", type=_POSITIVE_INT, default=50)
    ct.add_argument("--pixel-spacing-mm", type=_POSITIVE, default=None, help="for .npy stacks without spacing")
    ct.add_argument("--max-slices", type=_POSITIVE_INT, default=None, help="only the first N slices")
    ct.add_argument("--jobs", type=_POSITIVE_INT, default=1, help="--images/--sinograms: N processes over the "
                    "slices (the file is the one --jobs 1 writes)")
    ct.add_argument("--device", type=_device, default="auto", help=f"torch device for the FBP: {DEVICE_HELP}")
    ct.set_defaults(func=_prepare_ct)


def _add_prepare_mr_parser(prep_sub) -> None:
    mr = prep_sub.add_parser("mr", help="multi-coil Cartesian MR: random 4x masks split into two halves, "
                             "unbiased zero-filled halves, SENSE x_est")
    mr.add_argument("--kspace", type=Path, required=True,
                    help="multi-coil k-space: .h5/.npz/.mat, ISMRMRD .h5/.mrd or Siemens twix .dat file, or a "
                    "folder of them; fully sampled data are undersampled with --acceleration, a scanner's "
                    "undersampled raw data keep their acquired lines")
    mr.add_argument("--acceleration", type=_number(float, 1, what="a finite number > 1"), default=4.0)
    mr.add_argument("--center-lines", type=_POSITIVE_INT, default=48)
    mr.add_argument("--calib-width", type=_POSITIVE_INT, default=None,
                    help="ESPIRiT calibration region in central lines (default: all --center-lines; at least 6)")
    mr.add_argument("--virtual-coils", type=_POSITIVE_INT, default=None,
                    help="compress each slice to N virtual coils (SVD of its pre-whitened central lines) before "
                    "ESPIRiT and SENSE (default: keep all coils)")
    mr.add_argument("--variable-density", type=_NON_NEGATIVE, default=0.0, help="0: uniform; d > 0: p ~ |k|^-d")
    mr.add_argument("--sense-lambda", type=_NON_NEGATIVE, default=0.01)
    mr.add_argument("--keep-measurement", action="store_true",
                    help="also store each slice's k-space, coil maps and lines (for denoise --data-consistency)")
    mr.add_argument("--seed", type=_NON_NEGATIVE_INT, default=0)
    mr.add_argument("--device", type=_device, default="auto",
                    help="ESPIRiT and SENSE on cpu, cuda[:N] (SigPy with CuPy) or auto")
    mr.add_argument("--out", type=Path, required=True)
    mr.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    mr.set_defaults(func=_prepare_mr)


def _add_prepare_pet_parser(prep_sub) -> None:
    pet = prep_sub.add_parser("pet", help="2-D PET prompts: binomial thinning (or time frames), corrected FBP "
                              "(or OSEM) of each half, scaled, and of all prompts")
    source = pet.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompts", type=Path, help="prompt sinograms + factors (.h5/.npz, docs/pet.md)")
    source.add_argument("--listmode", type=Path, help="Siemens Biograph mMR list-mode: the Interfile header "
                        "(*.l.hdr) naming the PETLINK 32-bit .l file (docs/pet.md)")
    pet.add_argument("--image-size", type=_POSITIVE_INT, required=True, help="reconstruction grid N (N x N pixels)")
    pet.add_argument("--pixel-size-mm", type=_POSITIVE, required=True)
    pet.add_argument("--recon", choices=("fbp", "osem"), default="fbp", help="fbp: linear, unbiased (default); "
                     "osem: non-negative, biased in cold regions")
    pet.add_argument("--osem-iterations", type=_POSITIVE_INT, default=4)
    pet.add_argument("--osem-subsets", type=_POSITIVE_INT, default=8)
    pet.add_argument("--seed", type=_NON_NEGATIVE_INT, default=0, help="seed of the binomial thinning")
    pet.add_argument("--split", choices=("thinning", "time-frames"), default="thinning",
                     help="thinning: random assignment of the prompts, exact (default); time-frames: even / odd "
                     "frames of list-mode events with times, exact only for a static tracer (docs/pet.md)")
    pet.add_argument("--frame-s", type=_POSITIVE, default=None, help="frame length in s (--split time-frames)")
    pet.add_argument("--half-life-s", type=_POSITIVE, default=None, help="decay half-life in s in the halves' "
                     "weights, e.g. 6586.2 for F-18 (--split time-frames; default: the --listmode header's, "
                     "else no decay correction)")
    pet.add_argument("--keep-measurement", action="store_true", help="--listmode: also store each plane's half "
                     "prompts and delayeds under /measurement (docs/prepared-format.md)")
    pet.add_argument("--max-slices", type=_POSITIVE_INT, default=None, help="only the first N slices")
    pet.add_argument("--out", type=Path, required=True)
    pet.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    pet.set_defaults(func=_prepare_pet)


def _add_train_parser(sub) -> None:
    tr = sub.add_parser("train", help="train consensus / Noise2Noise / Noise2Clean networks")
    tr.add_argument("--method", choices=METHODS)
    _add_training_arguments(tr)
    tr.add_argument("--tie-networks", action="store_true",
                    help="consensus with one shared network (see docs/method.md)")
    tr.set_defaults(func=_train)


def _add_distill_parser(sub) -> None:
    ds = sub.add_parser("distill", help="train one image network g(x_est) on a trained run's output (deployment)")
    ds.add_argument("--teacher", type=Path, required=True, help="finished run to distil (consensus, noise2noise, ...)")
    ds.add_argument("--from-scratch", action="store_true",
                    help="start g from random weights (default: from the teacher's first network when the "
                         "architectures match)")
    _add_training_arguments(ds)
    ds.set_defaults(func=_distill, tie_networks=False)


def _add_denoise_parser(sub) -> None:
    dn = sub.add_parser("denoise", help="apply a trained run to a prepared file, or an image run to a DICOM series")
    dn.add_argument("--run", type=Path, required=True)
    inp = dn.add_mutually_exclusive_group(required=True)
    inp.add_argument("--data", type=Path, nargs="+", help="prepared .h5 files or folders (x1, x2, x_est): output "
                     "one DENOISED.h5, slices in file order")
    inp.add_argument("--images", type=Path, help="DICOM CT series folder (output: DICOM folder) or .npy/.npz HU stack")
    dn.add_argument("--out", type=Path, required=True, help="DENOISED.h5; with --images a folder or .npy/.npz file")
    dn.add_argument("--overwrite", action="store_true", help="replace an existing --out file (or, with --images, "
                    "a non-empty output folder)")
    dn.add_argument("--resample", action="store_true",
                    help="--images: run the network on its training pixel size and add its correction, resampled "
                    "to the series' pixels, to the input (the detail finer than the training grid is kept)")
    dn.add_argument("--pixel-spacing-mm", type=_POSITIVE, help="--images: pixel size of a .npy stack")
    dn.add_argument("--variant", choices=ALL_VARIANTS,
                    help="--data only; consensus: mean (default) | z | f1 | full; noise2noise: mean (default) | "
                    "full | f1; noise2clean, distill: full")
    dn.add_argument("--batch-size", type=_POSITIVE_INT, default=4)
    dn.add_argument("--device", type=_device, default="auto", help=DEVICE_HELP)
    dn.add_argument("--data-consistency", type=_lamda_or_auto, default=None, metavar="auto|LAMBDA",
                    help="--data only (MR prepared with --keep-measurement): pull the output back onto the acquired "
                    "k-space, weight LAMBDA, or auto: chosen on the held-out noisy --val file")
    dn.add_argument("--val", type=Path, help="held-out prepared file (with --keep-measurement) for "
                    "--data-consistency auto; with --uncertainty, the noisy data the map is calibrated on")
    dn.add_argument("--uncertainty", action="store_true",
                    help="--data only: also write /uncertainty, the per-pixel sigma from the two halves' outputs' "
                    "disagreement (calibrated on --val when given; docs/iq.md)")
    dn.add_argument("--keep-means-mm", type=_POSITIVE, default=None, metavar="D",
                    help="--data only: keep the linear reconstruction's mean in every structure of diameter D mm and "
                    "larger (iodine, HU, activity ROIs): out = f + G*(x_est - f), Gaussian sigma = D/8")
    dn.set_defaults(func=_denoise)


def _add_evaluate_parser(sub) -> None:
    ev = sub.add_parser("evaluate", help="metrics, tables and figures against the reference")
    ev.add_argument("--data", type=Path, nargs="+", required=True,
                    help="prepared test .h5 files or folders (with reference)")
    ev.add_argument("--results", nargs="*", help="NAME=DENOISED.h5 ... (baselines are added automatically)")
    ev.add_argument("--runs", nargs="*", help="NAME=RUN_DIR ... for training curves")
    ev.add_argument("--out", type=Path, required=True, help="report folder")
    ev.add_argument("--overwrite", action="store_true",
                    help="replace the report files of an earlier evaluation in --out")
    ev.set_defaults(func=_evaluate)


def _add_iq_parser(sub) -> None:
    iq = sub.add_parser("iq", help="task-based image quality (NPS, TTF per contrast, NPWE d', uncertainty "
                        "calibration) on a phantom simulated with a prepared CT file's geometry and dose")
    iq.add_argument("--data", type=Path, required=True, help="prepared CT .h5 (geometry_toml, dose_fraction); with a "
                    "reference, the uncertainty map is checked on it")
    iq.add_argument("--val", type=Path, help="held-out prepared .h5 (noisy only) to calibrate the uncertainty map on")
    iq.add_argument("--runs", nargs="*", help="NAME=RUN_DIR ... (FBP and TV are always reported)")
    iq.add_argument("--out", type=Path, required=True, help="report folder (iq.json, iq.md, iq_*.png)")
    iq.add_argument("--realisations", type=_number(int, 1, what="an integer >= 2"), default=16,
                    help="noise realisations of each phantom (default 16)")
    iq.add_argument("--seed", type=_NON_NEGATIVE_INT, default=0)
    iq.add_argument("--no-tv", action="store_true", help="skip the TV baseline (about 5 s per realisation on a CPU)")
    iq.add_argument("--tv-realisations", type=_number(int, 1, what="an integer >= 2"), default=16,
                    help="TV reconstructs only the first N realisations (default 16)")
    iq.add_argument("--device", type=_device, default="auto", help=DEVICE_HELP)
    iq.add_argument("--overwrite", action="store_true", help="replace the iq files of an earlier report in --out")
    iq.set_defaults(func=_iq)


def _add_demo_parser(sub) -> None:
    demo = sub.add_parser("demo", help="prepare, train, denoise and evaluate on embedded data")
    demo.add_argument("modality", nargs="?", default="ct", choices=("ct", "mr", "pet", "spectral", "all"))
    demo.add_argument("--out", type=Path, default=Path("demo_out"))
    demo.add_argument("--quick", action="store_true", help="seconds-long smoke run (tiny network, few steps)")
    demo.add_argument("--device", type=_device, default="auto", help=DEVICE_HELP)
    demo.add_argument("--overwrite", action="store_true",
                      help="replace a demo folder written with another protocol (e.g. --quick)")
    demo.set_defaults(func=_demo)


def main(argv: list[str] | None = None) -> int:
    """Run a command. Warnings (numpy RuntimeWarning, torch UserWarning, tomoconsensus' own) are held
    until it ends: after a refusal only the one error line is shown (they are its side effects), after
    success or an interruption each distinct warning is one ``warning:`` line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        code = _run(args)
    if code != 2:
        for message in dict.fromkeys(one_line(str(w.message)) for w in caught):
            print(f"warning: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    from tomoconsensus.claims import claimed_output

    try:
        with terminate_as_exception(), claimed_output(args):
            args.func(args)
    except (InputError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk outside the atomic writes (numba's cache, log.jsonl)
        if not is_no_space(exc):
            raise
        print(f"error: {no_space(exc.filename or getattr(args, 'out', '.'), exc)}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"interrupted: {exc.message}", file=sys.stderr)
        return 128 + int(exc.signum)
    except KeyboardInterrupt:
        print("interrupted: stopped by Ctrl-C (SIGINT); no partial output was left", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

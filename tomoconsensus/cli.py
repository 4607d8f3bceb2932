"""Command line: ``tomoconsensus prepare | train | distill | denoise | evaluate | iq | demo``.

Every sub-command prints a short summary at the end; errors in the input are reported as one
line naming the file, the field and what was expected (exit code 2), without a traceback. Outputs
never replace an input, nor an existing file unless ``--overwrite``; an output another command is
writing is refused "in use" (:mod:`tomoconsensus.claims`); a full disk is one line (exit 2). Ctrl-C
and SIGTERM stop with one line (exit 130 / 143), leaving no partial output; ``train`` saves a
checkpoint first.

``prepare NAME`` is contributed by each modality's plugin (its ``prepare_parser``, found through
:mod:`tomoconsensus.registry`, built-in or installed); this module names no modality.
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
    is_no_space,
    no_space,
    same_file,
)
from tomoconsensus.choices import ALL_VARIANTS, METHODS
from tomoconsensus.cli_types import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    device,
    input_paths,
    lamda_or_auto,
    named_values,
    number,
)
from tomoconsensus.devices import DEVICE_HELP
from tomoconsensus.errors import InputError, Interrupted, RunError, one_line
from tomoconsensus.signals import terminate_as_exception


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's contract: a usage error is one line on stderr, exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


# the names the parsers below use (the parsers live in cli_types)
_number = number
_POSITIVE_INT, _NON_NEGATIVE_INT, _POSITIVE, _NON_NEGATIVE = POSITIVE_INT, NON_NEGATIVE_INT, POSITIVE, NON_NEGATIVE
_lamda_or_auto, _device = lamda_or_auto, device


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
    from tomoconsensus.learn.cli import load_train_config, train

    overrides = {"method": args.method, **_train_overrides(args)}
    _check_val(args)
    config = load_train_config(args.config, overrides)
    print(train(config, _one_or_many(args.data), args.out, _one_or_many(args.val), resume=args.resume,
                overwrite=args.overwrite, data_in_memory=args.data_in_memory, cache_mb=args.cache_mb))


def _distill(args: argparse.Namespace) -> None:
    from tomoconsensus.learn.cli import distill, load_train_config

    _check_val(args)
    config = load_train_config(args.config, {"method": "distill", **_train_overrides(args)})
    print(distill(config, args.teacher, _one_or_many(args.data), args.out, _one_or_many(args.val),
                  resume=args.resume, overwrite=args.overwrite, warm_start=not args.from_scratch,
                  data_in_memory=args.data_in_memory, cache_mb=args.cache_mb))


def _scanner_images(run: Path):
    """The run's modality's ``denoise --images`` (its plugin's ``scanner_images``); InputError where it has none."""
    from tomoconsensus import registry
    from tomoconsensus.learn.runinfo import FILE, read_run_info

    modality = read_run_info(run).get("training_data", {}).get("modality")
    return registry.part_for(modality, "scanner_images", run / FILE, "training_data.modality", "a run of a modality "
                             "that denoises scanner images ({names}); other runs denoise prepared files (--data)")


def _denoise(args: argparse.Namespace) -> None:
    if args.val is not None and args.data_consistency != "auto" and not args.uncertainty:
        raise InputError("--val", "val", "only with --data-consistency auto (it chooses lambda there) or "
                         "--uncertainty (it calibrates the map there)", str(args.val))
    if args.images is not None:
        for flag, value, needs in (("--variant", args.variant, "the run's one-image variant is used"),
                                   ("--keep-means-mm", args.keep_means_mm, "it needs the prepared file's x_est"),
                                   ("--data-consistency", args.data_consistency, "it needs the prepared file's "
                                    "raw measurement")):
            if value is not None:
                raise InputError(flag, flag.lstrip("-").replace("-", "_"), f"--data, not --images ({needs})", value)
        if args.uncertainty:
            raise InputError("--uncertainty", "uncertainty", "--data (it needs the prepared file's halves x1, x2)",
                             "--images")
        print(_scanner_images(args.run)(args.run, args.images, args.out, args.resample, args.overwrite,
                                        args.pixel_spacing_mm, args.batch_size, args.device))
        return
    from tomoconsensus.data.sets import expand_prepared
    from tomoconsensus.denoising import denoise
    from tomoconsensus.learn.runs import RUN_FILES

    check_output_file(args.out, input_paths(*expand_prepared(args.data), *([args.val] if args.val else []),
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
    from tomoconsensus.evaluation import evaluate
    from tomoconsensus.report import REPORT_FILES, metrics_markdown, write_report

    results = named_values(args.results, "--results")
    runs = {k: Path(v) for k, v in named_values(args.runs, "--runs").items()}
    for name, run in runs.items():
        if not (run / "log.jsonl").is_file():
            raise InputError("--runs", name, "a run folder with log.jsonl (written by tomoconsensus train)", str(run))
    check_output_dir(args.out, input_paths(*args.data, *results.values(), *runs.values()), REPORT_FILES, args.overwrite)
    ev = evaluate(_one_or_many(args.data), results)
    _warn_seen_patients(args.data, runs)
    files = write_report(ev, args.out, runs)
    print(metrics_markdown(ev))
    print("wrote " + ", ".join(str(p) for p in files.values()))


def _warn_seen_patients(data: list[Path], runs: dict[str, Path]) -> None:
    """Warn (stderr) when a patient of the evaluated files trained or validated one of the ``runs``."""
    from tomoconsensus.data.sets import expand_prepared, patient_ids
    from tomoconsensus.learn.runinfo import seen_patient_warnings

    patients = sorted(patient_ids(expand_prepared(data)))
    for name, run in runs.items():
        for line in seen_patient_warnings(run, patients, name):
            print(line, file=sys.stderr)


def _iq_measure(data: Path):
    """The ``iq`` measurement of the prepared file's modality (its plugin's ``iq``); InputError where none."""
    from tomoconsensus import registry
    from tomoconsensus.hdf5 import open_hdf5

    with open_hdf5(data, "prepared HDF5 file (tomoconsensus prepare)") as f:
        modality = str(f.attrs.get("modality", ""))
    return registry.part_for(modality, "iq", data, "modality", "a prepared file of a modality with a task phantom "
                             "({names})")


def _iq(args: argparse.Namespace) -> None:
    from tomoconsensus.iq.report import IQ_FILES, iq_markdown, write_iq_report

    runs = {k: Path(v) for k, v in named_values(args.runs, "--runs").items()}
    for name in runs:
        if name in ("FBP", "TV"):
            raise InputError("--runs", name, "a name other than FBP and TV (those rows are always reported)")
    check_output_dir(args.out, input_paths(args.data, args.val), IQ_FILES, args.overwrite)
    measure = _iq_measure(args.data)
    result = measure(args.data, runs, args.val, args.realisations, args.seed, not args.no_tv, args.device,
                     args.tv_realisations)
    files = write_iq_report(result, args.out)
    for name in set(IQ_FILES) - {p.name for p in files}:  # an earlier report's figure not made this time
        (args.out / name).unlink(missing_ok=True)
    print(iq_markdown(result))
    print("wrote " + ", ".join(str(p) for p in files))




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


def build_parser(argv: list | None = None) -> argparse.ArgumentParser:
    """The parser of every command. ``prepare``'s and ``demo``'s modality sub-commands (the installed entry
    points and each plugin's cli module) are added where ``argv`` may reach them (``None``: always), so
    that ``tomoconsensus --help`` and the other commands do not look for plugins."""
    parser = _Parser(prog="tomoconsensus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_prepare_parser(sub, argv is None or "prepare" in argv)
    _add_train_parser(sub)
    _add_distill_parser(sub)
    _add_denoise_parser(sub)
    _add_evaluate_parser(sub)
    _add_iq_parser(sub)
    _add_demo_parser(sub, argv is None or "demo" in argv)
    return parser


def _add_demo_parser(sub, with_modalities: bool = True) -> None:
    """``demo NAME``: the study runner's parser, with every plugin that has a demo, where ``argv`` may reach it."""
    if with_modalities:
        from tomoconsensus.study.cli import add_demo_parser

        add_demo_parser(sub)
    else:
        sub.add_parser("demo", help="prepare, train, denoise and evaluate on embedded data (demo --help: which)")


def _add_prepare_parser(sub, with_modalities: bool = True) -> None:
    """``prepare NAME`` for every modality of the registry whose plugin has a ``prepare_parser``."""
    prep = sub.add_parser("prepare", help="split and reconstruct raw data into a prepared HDF5 dataset")
    prep_sub = prep.add_subparsers(dest="modality", required=True)
    if not with_modalities:
        return
    from tomoconsensus import registry

    for name in registry.names():
        plugin = registry.get(name)
        if plugin.has("prepare_parser"):
            plugin.load("prepare_parser")(prep_sub)


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


def main(argv: list[str] | None = None) -> int:
    """Run a command. Warnings (numpy RuntimeWarning, torch UserWarning, tomoconsensus' own) are held
    until it ends: after a refusal only the one error line is shown (they are its side effects), after
    success or an interruption each distinct warning is one ``warning:`` line."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
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

"""Command line: ``tomoconsensus prepare | train | distill | denoise | evaluate | demo``.

Every sub-command prints a short summary at the end; errors in the input are reported as one
line naming the file, the field and what was expected (exit code 2), without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from itertools import islice
from pathlib import Path

from tomoconsensus.errors import InputError


def _prepare_ct(args: argparse.Namespace) -> None:
    from tomoconsensus.ct.io import read_images, read_sinograms
    from tomoconsensus.ct.sources import measured_slices, simulated_slices
    from tomoconsensus.ct.split import CTModality
    from tomoconsensus.ct.tv import TVConfig, tv_reconstruct
    from tomoconsensus.data.prepared import write_prepared
    from tomoconsensus.geometry import FanBeamGeometry, load_geometry

    geom = load_geometry(args.geometry)
    if not isinstance(geom, FanBeamGeometry):
        raise InputError(args.geometry, "beam", "a fan-beam geometry for CT preparation", geom.beam)
    attrs: dict = {}
    if args.images:
        stack = read_images(args.images, args.pixel_spacing_mm)
        n = len(stack.hu) if args.max_slices is None else min(args.max_slices, len(stack.hu))
        slices = simulated_slices(stack, geom, args.dose_fraction, args.seed, args.reference)
        attrs.update(source=str(args.images), source_kind="simulated from clean images", reference_kind=args.reference,
                     dose_fraction=args.dose_fraction, incident_photons_full_dose=geom.protocol.incident_photons,
                     electronic_noise_std=geom.protocol.electronic_noise_std)
    else:
        stack = read_sinograms(args.sinograms, geom)
        n = len(stack.sinograms) if args.max_slices is None else min(args.max_slices, len(stack.sinograms))
        slices = measured_slices(stack)
        attrs.update(source=str(args.sinograms), source_kind="measured sinograms")
    modality = CTModality(geom, device=args.device)
    baselines = {}
    if args.tv:
        tv = TVConfig(lam=args.tv_lam, n_iter=args.tv_iter)
        baselines["tv"] = lambda sino: modality.to_units(tv_reconstruct(sino, geom, tv))
        attrs.update(tv_lam=tv.lam, tv_iter=tv.n_iter)
    summary = write_prepared(args.out, modality, islice(slices, n), n, args.seed,
                             attrs, baselines)
    print(summary)


def _prepare_mr(args: argparse.Namespace) -> None:
    from tomoconsensus.data.prepared import write_prepared
    from tomoconsensus.mr.io import read_kspace
    from tomoconsensus.mr.recon import sigpy_device
    from tomoconsensus.mr.sources import undersampled_slices
    from tomoconsensus.mr.split import MRModality

    device = sigpy_device(args.device)
    volumes = read_kspace(args.kspace)
    n = sum(len(v.kspace) for v in volumes)
    modality = MRModality(args.acceleration, args.center_lines, args.sense_lambda, device=device)
    scales: dict[str, float] = {}
    slices = undersampled_slices(volumes, args.acceleration, args.center_lines, args.seed,
                                 variable_density=args.variable_density, scales=scales, device=device)
    attrs = {"source": str(args.kspace), "variable_density": args.variable_density, "scale_factors": scales}
    summary = write_prepared(args.out, modality, slices, n, args.seed, attrs,
                             {"zero_filled": lambda m: modality.zero_filled(m)})
    print(summary)


def _train_overrides(args: argparse.Namespace) -> dict:
    """Run-config values given on the command line (``train`` and ``distill``)."""
    return {"epochs": args.epochs, "max_steps": args.max_steps, "device": args.device,
            "seed": args.seed, "base_features": args.base_features, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "beta_w": args.beta_w, "beta_r": args.beta_r,
            "tie_networks": True if args.tie_networks else None}


def _train(args: argparse.Namespace) -> None:
    from tomoconsensus.train import load_train_config, train

    config = load_train_config(args.config, {"method": args.method, **_train_overrides(args)})
    print(train(config, args.data, args.out, args.val, resume=args.resume))


def _distill(args: argparse.Namespace) -> None:
    from tomoconsensus.distill import distill
    from tomoconsensus.train import load_train_config

    config = load_train_config(args.config, {"method": "distill", **_train_overrides(args)})
    print(distill(config, args.teacher, args.data, args.out, args.val, resume=args.resume))


def _denoise(args: argparse.Namespace) -> None:
    if args.images is not None:
        from tomoconsensus.denoise_images import denoise_images

        if args.variant is not None:
            raise InputError("--variant", "variant", "no --variant with --images (the run's one-image variant is used)",
                             args.variant)
        print(denoise_images(args.run, args.images, args.out, args.resample, args.overwrite, args.pixel_spacing_mm,
                             args.batch_size, args.device))
        return
    from tomoconsensus.denoise import denoise

    print(denoise(args.run, args.data, args.out, args.variant, args.batch_size, args.device))


def _evaluate(args: argparse.Namespace) -> None:
    from tomoconsensus.evaluate import evaluate
    from tomoconsensus.report import metrics_markdown, write_report

    results = dict(_name_value(r, "--results") for r in args.results or [])
    runs = {k: Path(v) for k, v in (_name_value(r, "--runs") for r in args.runs or [])}
    ev = evaluate(args.data, results)
    files = write_report(ev, args.out, runs)
    print(metrics_markdown(ev))
    print("wrote " + ", ".join(str(p) for p in files.values()))


def _name_value(text: str, option: str) -> tuple[str, str]:
    if "=" not in text:
        raise InputError(option, text, "NAME=PATH")
    name, value = text.split("=", 1)
    return name, value


def _demo(args: argparse.Namespace) -> None:
    from tomoconsensus.demo import QUICK, DemoProtocol, run_demo

    protocol = QUICK if args.quick else DemoProtocol()
    for modality in ("ct", "mr") if args.modality == "all" else (args.modality,):
        run_demo(modality, args.out / modality, protocol, args.device)


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Data, run folder and run-config overrides shared by ``train`` and ``distill``."""
    parser.add_argument("--data", type=Path, required=True, help="prepared training .h5")
    parser.add_argument("--config", type=Path, help="run config TOML (e.g. examples/ct/train.toml)")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--val", type=Path, help="prepared validation .h5 (held-out slices)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    for name, kind in (("epochs", int), ("max-steps", int), ("seed", int), ("base-features", int),
                       ("batch-size", int), ("learning-rate", float), ("beta-w", float), ("beta-r", float)):
        parser.add_argument(f"--{name}", type=kind, help="override the config value")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tomoconsensus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    prep = sub.add_parser("prepare", help="split and reconstruct raw data into a prepared HDF5 dataset")
    prep_sub = prep.add_subparsers(dest="modality", required=True)
    ct = prep_sub.add_parser("ct", help="fan-beam CT: odd/even views, Hann FBP of each half and of all views")
    src = ct.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", type=Path, help="clean images in HU: DICOM folder/file or .npy/.npz stack")
    src.add_argument("--sinograms", type=Path, help="measured line-integral sinograms (.h5, see docs)")
    ct.add_argument("--geometry", required=True, help="geometry name (geometry/NAME.toml) or TOML path")
    ct.add_argument("--dose-fraction", type=float, default=0.25, help="simulated dose / full dose (default 0.25)")
    ct.add_argument("--reference", default="noiseless-fbp", choices=("noiseless-fbp", "full-dose-fbp", "image"),
                    help="reference for simulated data (default: FBP of the noiseless sinogram)")
    ct.add_argument("--seed", type=int, default=0)
    ct.add_argument("--out", type=Path, required=True)
    ct.add_argument("--tv", action="store_true", help="also compute the TV baseline (slow on CPU)")
    ct.add_argument("--tv-lam", type=float, default=3e-4)
    ct.add_argument("--tv-iter", type=int, default=50)
    ct.add_argument("--pixel-spacing-mm", type=float, default=None, help="for .npy stacks without spacing")
    ct.add_argument("--max-slices", type=int, default=None, help="only the first N slices")
    ct.add_argument("--device", default="cpu", help="torch device for the FBP (cpu, cuda)")
    ct.set_defaults(func=_prepare_ct)
    mr = prep_sub.add_parser("mr", help="multi-coil Cartesian MR: random 4x masks split into two halves, "
                             "unbiased zero-filled halves, SENSE x_est")
    mr.add_argument("--kspace", type=Path, required=True, help="fully sampled k-space: .h5/.npz/.mat file or folder")
    mr.add_argument("--acceleration", type=float, default=4.0)
    mr.add_argument("--center-lines", type=int, default=48)
    mr.add_argument("--variable-density", type=float, default=0.0, help="0: uniform; d > 0: p ~ |k|^-d")
    mr.add_argument("--sense-lambda", type=float, default=0.01)
    mr.add_argument("--seed", type=int, default=0)
    mr.add_argument("--device", default="auto", help="ESPIRiT and SENSE on cpu, cuda[:N] (SigPy with CuPy) or auto")
    mr.add_argument("--out", type=Path, required=True)
    mr.set_defaults(func=_prepare_mr)

    tr = sub.add_parser("train", help="train consensus / Noise2Noise / Noise2Clean networks")
    tr.add_argument("--method", choices=("consensus", "noise2noise", "noise2clean"))
    _add_training_arguments(tr)
    tr.add_argument("--tie-networks", action="store_true", help="consensus with one shared network (see docs/method.md)")
    tr.set_defaults(func=_train)

    ds = sub.add_parser("distill", help="train one image network g(x_est) on a trained run's output (deployment)")
    ds.add_argument("--teacher", type=Path, required=True, help="finished run to distil (consensus, noise2noise, ...)")
    _add_training_arguments(ds)
    ds.set_defaults(func=_distill, tie_networks=False)

    dn = sub.add_parser("denoise", help="apply a trained run to a prepared file, or an image run to a DICOM series")
    dn.add_argument("--run", type=Path, required=True)
    inp = dn.add_mutually_exclusive_group(required=True)
    inp.add_argument("--data", type=Path, help="prepared .h5 (x1, x2, x_est): output DENOISED.h5")
    inp.add_argument("--images", type=Path, help="DICOM CT series folder (output: DICOM folder) or .npy/.npz HU stack")
    dn.add_argument("--out", type=Path, required=True, help="DENOISED.h5; with --images a folder or .npy/.npz file")
    dn.add_argument("--resample", action="store_true", help="--images: run on the training pixel size and resample back")
    dn.add_argument("--overwrite", action="store_true", help="--images: replace a non-empty output folder or file")
    dn.add_argument("--pixel-spacing-mm", type=float, help="--images: pixel size of a .npy stack")
    dn.add_argument("--variant", help="consensus: z (default) | f1; noise2noise: mean (default) | full | f1")
    dn.add_argument("--batch-size", type=int, default=4)
    dn.add_argument("--device", default="auto")
    dn.set_defaults(func=_denoise)

    ev = sub.add_parser("evaluate", help="metrics, tables and figures against the reference")
    ev.add_argument("--data", type=Path, required=True, help="prepared test .h5 (with reference)")
    ev.add_argument("--results", nargs="*", help="NAME=DENOISED.h5 ... (baselines are added automatically)")
    ev.add_argument("--runs", nargs="*", help="NAME=RUN_DIR ... for training curves")
    ev.add_argument("--out", type=Path, required=True, help="report folder")
    ev.set_defaults(func=_evaluate)

    demo = sub.add_parser("demo", help="prepare, train, denoise and evaluate on embedded data")
    demo.add_argument("modality", nargs="?", default="ct", choices=("ct", "mr", "all"))
    demo.add_argument("--out", type=Path, default=Path("demo_out"))
    demo.add_argument("--quick", action="store_true", help="seconds-long smoke run (tiny network, few steps)")
    demo.add_argument("--device", default="auto")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

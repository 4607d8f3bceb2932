"""The ``demo`` command: any modality whose plugin has a demo, or all of them, through the study runner."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoconsensus import registry
from tomoconsensus.atomic import check_writable_folder
from tomoconsensus.cli_types import DEVICE_HELP, device
from tomoconsensus.errors import InputError


def run_demo_command(args: argparse.Namespace) -> None:
    """``demo NAME|all``: each demo in ``--out/NAME`` with its full or ``--quick`` protocol."""
    from tomoconsensus.study.runner import demo_protocol, run_study

    if args.out.exists() and not args.out.is_dir():
        raise InputError("--out", str(args.out), "a folder for the demo's files", "an existing file")
    check_writable_folder(args.out)
    for modality in registry.with_part("demo") if args.modality == "all" else (args.modality,):
        run_study(modality, args.out / modality, demo_protocol(modality, args.quick), args.device,
                  overwrite=args.overwrite)


def add_demo_parser(sub) -> None:
    """Add ``demo`` to the CLI's subparsers; its choices are the plugins with a demo, and ``all``."""
    names = registry.with_part("demo")
    demo = sub.add_parser("demo", help="prepare, train, denoise and evaluate on embedded data")
    demo.add_argument("modality", nargs="?", default=names[0] if names else None, choices=(*names, "all"),
                      help="the modality's demo (protocol: its plugin's demo.toml), or all of them in turn")
    demo.add_argument("--out", type=Path, default=Path("demo_out"))
    demo.add_argument("--quick", action="store_true", help="seconds-long smoke run (the TOML's quick protocol)")
    demo.add_argument("--device", type=device, default="auto", help=DEVICE_HELP)
    demo.add_argument("--overwrite", action="store_true",
                      help="replace a demo folder written with another protocol (e.g. --quick)")
    demo.set_defaults(func=run_demo_command)

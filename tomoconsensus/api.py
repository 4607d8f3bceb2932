"""``prepare`` as a Python function, with exactly the command line's arguments and checks.

Preparation is a modality's own (its plugin's ``prepare_parser``: which inputs, which options), so
the function takes the modality's name and its options as keyword arguments, spelled like the flags
with ``_`` for ``-`` (``dose_fraction=0.25`` is ``--dose-fraction 0.25``; ``True`` gives a bare flag,
``None`` and ``False`` leave it out). They are parsed by the plugin's own parser, so every default,
type and range is the command's; a bad value raises the same :class:`~tomoconsensus.errors.InputError`
(naming the flag) instead of exiting.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tomoconsensus import registry
from tomoconsensus.claims import claim_output
from tomoconsensus.errors import InputError


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises InputError instead of printing usage and exiting."""

    def error(self, message: str):
        raise InputError("prepare", "arguments", "the modality's prepare options (tomoconsensus prepare NAME "
                         "--help)", message)


def _argv(options: dict[str, Any]) -> list[str]:
    argv = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, *(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv


def prepare(modality: str, out: str | Path, **options: Any) -> Path:
    """Split and reconstruct raw data into a prepared HDF5 file, as ``tomoconsensus prepare MODALITY``.

    Parameters
    ----------
    modality : str
        A registered modality with a ``prepare`` part (``tomoconsensus.registry.with_part("prepare_parser")``).
    out : str or Path
        The prepared file (``--out``).
    **options
        The modality's flags as keywords (module docstring), e.g. for CT
        ``images="slices.npz", geometry="demo-fanbeam", split="thinning", max_slices=4``.

    Returns
    -------
    Path
        ``out``, written atomically (nothing is left behind on an error).
    """
    plugin = registry.get(modality)
    parser = _Parser(prog="tomoconsensus prepare")
    plugin.load("prepare_parser")(parser.add_subparsers(dest="modality", required=True))
    args = parser.parse_args([modality, *_argv({**options, "out": out})])
    with claim_output(out):  # a second writer of the same file is refused "in use", as in the CLI
        args.func(args)
    return Path(out)

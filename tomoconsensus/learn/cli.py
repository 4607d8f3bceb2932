"""The command line's view of training: which flag sets which run-config field, and errors named by flag.

The library names parameters (``TrainConfig: field 'beta_r': expected a finite number >= 0``); the
command line names what the user typed. :data:`FLAGS` maps each :class:`~tomoconsensus.learn.config.TrainConfig`
field that ``train`` / ``distill`` can set on the command line to its flag; an error about such a field
whose value came from the command line (or, raised later by the trainer, about a field that has a flag)
names the flag instead. Fields without a flag are set in the ``--config`` TOML, which the error names.

``distill --beta-r`` is refused: distillation trains g on ``||g(x_est) - z||^2 + beta_w ||Theta_g||^2``
(:mod:`tomoconsensus.distillation`), which has no consistency term, so a beta_r given there would be ignored.
(A ``beta_r`` in a shared ``--config`` TOML is recorded in the run's config.toml and has no effect.)

The functions here have the library's signatures, so the command line calls them in its place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tomoconsensus.errors import InputError
from tomoconsensus.learn import config as _config
from tomoconsensus.learn.config import CODE_SOURCE, TrainConfig

#: TrainConfig field -> the command-line flag of ``train`` / ``distill`` that sets it.
FLAGS = {"method": "--method", "epochs": "--epochs", "max_steps": "--max-steps", "seed": "--seed",
         "base_features": "--base-features", "batch_size": "--batch-size", "learning_rate": "--learning-rate",
         "beta_w": "--beta-w", "beta_r": "--beta-r", "tie_networks": "--tie-networks", "device": "--device"}
#: Parameters of train / distill (named by the library's errors as fields) -> the flag that sets them.
ARGUMENT_FLAGS = {"run_dir": "--out", "resume": "--resume", "overwrite": "--overwrite", "teacher_run": "--teacher",
                  "train_path": "--data", "val_path": "--val"}
#: Fields that distillation's objective does not use: refused as flags of ``distill``.
DISTILL_UNUSED = {"beta_r": "distillation's objective ||g(x_est) - z||^2 + beta_w ||Theta||^2 has no consistency "
                            "term"}

T = TypeVar("T")


def flag_error(exc: InputError, given: Mapping[str, Any] | None = None) -> InputError:
    """``exc`` named by flag where its field has one and the value came from the command line (``given``;
    None: any library error about a config field, raised after the configuration was made; a field without a
    flag is then named as one of ``--config``). An error about a parameter of train / distill
    (:data:`ARGUMENT_FLAGS`, e.g. ``run_dir``) keeps its file and names the flag as the field."""
    field = exc.field
    if field in ARGUMENT_FLAGS:
        return InputError(exc.source, ARGUMENT_FLAGS[field], exc.expected, exc.got)
    from_command_line = field in given if given is not None else exc.source == CODE_SOURCE
    if given is None and exc.source == CODE_SOURCE and field not in FLAGS:
        return InputError("--config", field, exc.expected, exc.got)  # set in the run config TOML only
    if field not in FLAGS or not from_command_line:
        return exc
    return InputError(FLAGS[field], field, exc.expected, exc.got)


def load_train_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """:func:`tomoconsensus.learn.config.load_train_config` for the command line: values given as flags are
    named by flag; ``distill`` refuses the flags of fields it does not use (:data:`DISTILL_UNUSED`)."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if given.get("method") == "distill":
        for field, why in DISTILL_UNUSED.items():
            if field in given:
                raise InputError(FLAGS[field], field, f"no {FLAGS[field]} with distill ({why})", given[field])
    try:
        return _config.load_train_config(path, overrides)
    except InputError as exc:
        raise flag_error(exc, given) from None


def _named_by_flags(run: Callable[..., T], *args, **kwargs) -> T:
    try:
        return run(*args, **kwargs)
    except InputError as exc:
        raise flag_error(exc) from None


def train(*args, **kwargs):
    """:func:`tomoconsensus.learn.loop.train`; an error about a config field with a flag names the flag."""
    from tomoconsensus.learn.loop import train as train_

    return _named_by_flags(train_, *args, **kwargs)


def distill(*args, **kwargs):
    """:func:`tomoconsensus.distillation.distill`; an error about a config field with a flag names the flag."""
    from tomoconsensus.distillation import distill as distill_

    return _named_by_flags(distill_, *args, **kwargs)

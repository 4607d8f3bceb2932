"""Run configuration of ``tomoconsensus train``: :class:`TrainConfig`, its TOML file and the step-size schedule.

The paper's values (Wu et al. 2019, sec. 3.2) are the defaults; a run is configured by a TOML file
(``examples/ct/train.toml``, flat keys or under ``[train]``) with command-line overrides. No heavy
imports: the command line reads and checks a configuration before torch is loaded.

Every field is checked once, in :meth:`TrainConfig.__post_init__`, however the configuration is made
(a TOML file, the command line, ``TrainConfig(...)`` or ``dataclasses.replace`` in code, a checkpoint's
record): a bad value is an :class:`~tomoconsensus.errors.InputError` naming the field (``beta_r``), and
the source (the TOML file, the checkpoint, or ``TrainConfig`` for code). The command line names its
flags instead (:mod:`tomoconsensus.learn.cli`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tomoconsensus.choices import METHODS
from tomoconsensus.config import INT_LIMIT, non_negative, positive, read_toml
from tomoconsensus.devices import DEVICE_HELP, check_device
from tomoconsensus.errors import InputError

LR_SCHEDULES = ("constant", "cosine")
#: What model selection minimises on the held-out halves (docs/method.md, 'Choosing without a reference').
SELECTIONS = ("loss", "output_on_halves")
#: The methods whose deployed operator can be scored on held-out halves (the self-supervised ones).
OPERATOR_SCORED = ("consensus", "noise2noise")


def _known_method(v: str) -> bool:
    """one of consensus, noise2noise, noise2clean, distill"""
    return v in METHODS


def _known_schedule(v: str) -> bool:
    """'constant' or 'cosine'"""
    return v in LR_SCHEDULES


def _known_selection(v: str) -> bool:
    """'loss' or 'output_on_halves'"""
    return v in SELECTIONS


def selection_key(method: str, selection: str = "loss") -> str:
    """The key of the ``val`` rows that model selection minimises: ``val_output_on_halves`` for
    ``selection = "output_on_halves"`` and a self-supervised method, else the method's data term
    ``val_<method>`` (the supervised methods always select on theirs)."""
    return "val_output_on_halves" if selection == "output_on_halves" and method in OPERATOR_SCORED else f"val_{method}"


def learning_rate_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """Adam step size for the update that follows ``step`` completed steps."""
    if config.lr_schedule == "cosine" and total_steps > 0:
        return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    return config.learning_rate


def _device_name(v: str) -> bool:
    try:
        check_device(v)
    except InputError:
        return False
    return True


_device_name.__doc__ = DEVICE_HELP


def _unet_depth(v: int) -> bool:
    """an integer in [1, 16] (poolings: the images need at least 2**depth pixels)"""
    return 1 <= v <= 16


def _amp_mode(v: str) -> bool:
    """'auto' (bf16 on CUDA), 'bf16' or 'off'"""
    return v in ("auto", "bf16", "off")


@dataclass(frozen=True)
class TrainConfig:
    """Run configuration (paper values as defaults; CT beta values).

    Attributes
    ----------
    method : str
        ``consensus``, ``noise2noise``, ``noise2clean`` or ``distill`` (x_est -> a teacher run's output;
        set by ``tomoconsensus distill``).
    channels, base_features, depth : int
        UNet: 1 channel for CT, 2 (real, imaginary) for MR; 32 base features for CT, 64 for MR.
    patch_size, batch_size, patches_per_slice, epochs : int
        96, 40, 40, 100 in the paper.
    learning_rate : float
        Adam step size (1e-4).
    lr_schedule : str
        ``constant`` (the paper) or ``cosine``: the step size falls as
        ``learning_rate * (1 + cos(pi * step / total_steps)) / 2`` to zero at the last step, so the
        last epochs average out the noise of the minibatch gradients. A function of the step alone,
        so resuming stays exact.
    beta_w, beta_r : float
        Weight-decay and consistency weights (CT 5e-6, 0.5; MR 1e-6, 5).
    symmetric_n2n : bool
        Noise2Noise also maps x2 -> x1.
    tie_networks : bool
        Consensus with Theta1 = Theta2 (one network applied to both halves). Not the paper's
        choice (two networks), but it removes the flat direction of Eq. 8 (see
        :func:`tomoconsensus.losses.consensus`), which matters when training data are few.
    select_best : bool
        With validation data, ``model.pt`` holds the networks of the epoch with the lowest held-out
        *self-supervised* loss (the method's data term on held-out x1, x2: no reference needed).
        For consensus and Noise2Noise this loss is, up to a constant, an unbiased estimate of the
        error against the clean image, so it selects the epoch before the networks start fitting
        the training noise. Without validation data the last epoch is kept.
    selection : str
        What that selection minimises: ``loss`` (the method's held-out data term, above) or
        ``output_on_halves`` (the held-out error of the deployed operator g applied to each half and
        scored against the other, :func:`tomoconsensus.methods.output_on_halves_error`; consensus and
        Noise2Noise, the supervised methods keep their loss). Measured against the clean error per
        modality in docs/method.md: the PET demo uses ``output_on_halves``, the others ``loss``.
    max_steps : int
        Stop after this many steps (0: ``epochs`` full epochs); for reduced protocols.
    checkpoint_every_steps, log_every_steps : int
        How often to write ``checkpoint.pt`` and a ``log.jsonl`` line.
    device : str
        ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``...
    amp : str
        ``auto`` (bf16 autocast on CUDA), ``bf16`` or ``off``.
    channels_last, compile : bool
        CUDA speed options.
    """

    method: str = field(default="consensus", metadata={"check": _known_method})
    channels: int = field(default=1, metadata={"check": positive})
    base_features: int = field(default=32, metadata={"check": positive})
    depth: int = field(default=4, metadata={"check": _unet_depth})
    patch_size: int = field(default=96, metadata={"check": positive})
    batch_size: int = field(default=40, metadata={"check": positive})
    patches_per_slice: int = field(default=40, metadata={"check": positive})
    epochs: int = field(default=100, metadata={"check": positive})
    learning_rate: float = field(default=1e-4, metadata={"check": positive})
    lr_schedule: str = field(default="constant", metadata={"check": _known_schedule})
    beta_w: float = field(default=5e-6, metadata={"check": non_negative})
    beta_r: float = field(default=0.5, metadata={"check": non_negative})
    symmetric_n2n: bool = False
    tie_networks: bool = False
    select_best: bool = True
    selection: str = field(default="loss", metadata={"check": _known_selection})
    seed: int = field(default=0, metadata={"check": non_negative})
    max_steps: int = field(default=0, metadata={"check": non_negative})
    checkpoint_every_steps: int = field(default=500, metadata={"check": positive})
    log_every_steps: int = field(default=10, metadata={"check": positive})
    device: str = field(default="auto", metadata={"check": _device_name})
    amp: str = field(default="auto", metadata={"check": _amp_mode})
    channels_last: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        """Check every field (type, then its ``metadata["check"]``): InputError("TrainConfig", field, ...).

        Integers given to float fields become floats (``learning_rate=1`` is 1.0), as from TOML.
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            converted = _of_kind(f.type, value)
            if converted is None:
                expected = "an integer below 2**63 in magnitude" if f.type == "int" else f"a value of type {f.type}"
                raise InputError(CODE_SOURCE, f.name, expected, value)
            check = f.metadata.get("check")
            if check is not None and not check(converted):
                raise InputError(CODE_SOURCE, f.name, (check.__doc__ or "a valid value (see docs)").strip(), value)
            if converted is not value:
                object.__setattr__(self, f.name, converted)


def _of_kind(kind: str, value: Any) -> Any:
    """``value`` as a field of type ``kind`` (bool, int, float, str), or None if it is not one: no bool for a
    number, no text for a number; an integral float for an int (TOML ``3.0``), an int for a float, NumPy
    scalars as Python numbers."""
    if kind == "bool" or isinstance(value, bool):
        return value if kind == "bool" and isinstance(value, bool) else None
    if kind == "str":
        return value if isinstance(value, str) else None
    if not isinstance(value, numbers.Real) or isinstance(value, _numpy_bool()):  # NumPy scalars are numbers too
        return None
    if kind == "float":
        return float(value)
    if not isinstance(value, numbers.Integral) and not (math.isfinite(value) and float(value).is_integer()):
        return None
    return int(value) if -INT_LIMIT < value < INT_LIMIT else None


def _numpy_bool() -> tuple[type, ...]:
    """NumPy's bool scalar type, if NumPy is loaded (a bool is no number here)."""
    import sys

    numpy = sys.modules.get("numpy")
    return (numpy.bool_,) if numpy is not None else ()


#: The source named by an error in a configuration made in code (not read from a file).
CODE_SOURCE = "TrainConfig"


def train_config_from(values: Mapping[str, Any], source: str | Path) -> TrainConfig:
    """A :class:`TrainConfig` from a table (a TOML file's, a checkpoint's record); an unknown or bad field is
    an InputError naming ``source`` and the field."""
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(source, unknown[0], f"one of {sorted(known)}", "unknown field")
    try:
        return TrainConfig(**values)
    except InputError as exc:
        if exc.source != CODE_SOURCE:
            raise
        raise InputError(source, exc.field, exc.expected, exc.got) from None


def load_train_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a run config TOML (flat keys, or under ``[train]``) and apply overrides."""
    values: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        values = read_toml(path, "run config")
        values = values.get("train", values)
        if not isinstance(values, dict):
            raise InputError(source, "train", "a table [train] of run settings", values)
        values = dict(values)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return train_config_from(values, source)


def config_to_toml(config: TrainConfig) -> str:
    """The configuration as flat TOML (``config.toml`` of a run folder; read back by :func:`load_train_config`)."""
    lines = []
    for key, value in dataclasses.asdict(config).items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = f'"{value}"' if isinstance(value, str) else repr(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"

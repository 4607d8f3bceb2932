"""A demo's protocol, read from its TOML: the documented protocol is the one that runs.

Each modality's demo ships ``demo.toml`` beside its :class:`~tomoconsensus.study.spec.DemoSpec`::

    [full.training]        # every field of TrainingProtocol (TrainConfig's names)
    [full.method_epochs]   # optional: methods that train another number of epochs (noise2clean = 144)
    [full.method_lr_schedule]  # optional: methods with another step-size schedule (distill = "constant")
    [full.data]            # every field of the modality's data class
    [quick.training]       # --quick: only the values that differ from full
    [quick.method_epochs]
    [quick.method_lr_schedule]
    [quick.data]

The ``full`` tables must name every field (no value comes from code); ``quick`` overrides. Unknown
tables or keys, missing keys and values of the wrong type are refused with one line naming the file,
the key and what was expected. Arrays become tuples; integers are accepted for floats.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tomoconsensus.config import read_toml
from tomoconsensus.errors import InputError
from tomoconsensus.study.spec import TrainingProtocol

#: The protocols a demo TOML holds.
PROTOCOLS = ("full", "quick")
TABLES = ("training", "method_epochs", "method_lr_schedule", "data")


@dataclass(frozen=True)
class StudyProtocol:
    """One protocol of a demo: its name, the shared training values, the modality's data values.

    ``method_epochs`` maps methods to epochs other than ``training.epochs`` (e.g. the supervised bound),
    ``method_lr_schedule`` to a step-size schedule other than ``training.lr_schedule``.
    """

    name: str
    training: TrainingProtocol
    data: Any
    method_epochs: tuple[tuple[str, int], ...] = ()
    method_lr_schedule: tuple[tuple[str, str], ...] = ()

    def epochs(self, method: str) -> int:
        return dict(self.method_epochs).get(method, self.training.epochs)

    def lr_schedule(self, method: str) -> str:
        return dict(self.method_lr_schedule).get(method, self.training.lr_schedule)

    def describe(self) -> str:
        return self.data.describe(self)


def load_protocol(path: str | Path, data_class: type, name: str = "full") -> StudyProtocol:
    """Protocol ``name`` (``full`` or ``quick``) of the demo TOML ``path`` for ``data_class``."""
    path = Path(path)
    if name not in PROTOCOLS:
        raise InputError(path, "protocol", " or ".join(PROTOCOLS), name)
    raw = read_toml(path, "demo protocol")
    unknown = sorted(set(raw) - set(PROTOCOLS))
    if unknown or "full" not in raw:
        raise InputError(path, "tables", f"[full.*] and optionally [quick.*] ({', '.join(TABLES)})",
                         unknown or "no [full] table")
    tables = {t: dict(_table(raw, "full", t, path)) for t in TABLES}
    if name == "quick":
        for t in TABLES:
            tables[t].update(_table(raw, "quick", t, path))
    epochs = {m: _value(path, f"{name}.method_epochs.{m}", v, int) for m, v in tables["method_epochs"].items()}
    schedules = {m: _value(path, f"{name}.method_lr_schedule.{m}", v, str)
                 for m, v in tables["method_lr_schedule"].items()}
    _check_choices(path, name, tables["training"], {"method_epochs": epochs, "method_lr_schedule": schedules})
    return StudyProtocol(name, _build(TrainingProtocol, tables["training"], path, f"{name}.training"),
                         _build(data_class, tables["data"], path, f"{name}.data"), tuple(sorted(epochs.items())),
                         tuple(sorted(schedules.items())))


def _check_choices(path: Path, name: str, training: dict[str, Any], per_method: dict[str, dict[str, Any]]) -> None:
    """Step-size schedules and the selection TrainConfig knows, and per-method tables naming known methods,
    checked on reading (a typo would otherwise surface only when that method starts training, after the
    data are prepared)."""
    from tomoconsensus.choices import METHODS
    from tomoconsensus.learn.config import LR_SCHEDULES, SELECTIONS

    for table, values in per_method.items():
        for method in values:
            if method not in METHODS:
                raise InputError(path, f"{name}.{table}.{method}", f"a method of {', '.join(METHODS)}", method)
    choices = [(f"{name}.training.lr_schedule", training.get("lr_schedule"), LR_SCHEDULES),
               (f"{name}.training.selection", training.get("selection"), SELECTIONS)]
    choices += [(f"{name}.method_lr_schedule.{m}", v, LR_SCHEDULES)
                for m, v in per_method["method_lr_schedule"].items()]
    for key, value, known in choices:
        if value is not None and value not in known:
            raise InputError(path, key, " or ".join(known), value)


def _table(raw: dict, protocol: str, table: str, path: Path) -> dict[str, Any]:
    section = raw.get(protocol, {})
    extra = sorted(set(section) - set(TABLES))
    if extra:
        raise InputError(path, protocol, f"tables {', '.join(TABLES)}", extra)
    value = section.get(table, {})
    if not isinstance(value, dict):
        raise InputError(path, f"{protocol}.{table}", "a table", value)
    return value


def _build(cls: type, values: dict[str, Any], path: Path, where: str):
    """``cls(**values)`` with every field given exactly once and of its annotated type."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown, missing = sorted(set(values) - set(names)), [n for n in names if n not in values]
    if unknown:
        raise InputError(path, f"{where}.{unknown[0]}", f"one of {', '.join(names)}", "an unknown key")
    if missing:
        raise InputError(path, f"{where}.{missing[0]}", f"a value (every field of {cls.__name__})", "missing")
    return cls(**{n: _value(path, f"{where}.{n}", values[n], hints[n]) for n in names})


def _value(path: Path, key: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the type ``hint`` (int, float, str, bool, tuple[X, ...], X | None)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _value(path, key, value, next(a for a in args if a is not type(None)))
    if origin is tuple:
        if not isinstance(value, list):
            raise InputError(path, key, "an array", value)
        return tuple(_value(path, f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise InputError(path, key, f"a {hint.__name__}", repr(value))
    return value

"""Frozen dataclasses from TOML tables, validated field by field.

A field's ``metadata["check"]`` is a predicate on the (type-converted) value; its docstring, or
the name of one of the predicates below, becomes the "expected ..." part of the error.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path
from typing import Any

from tomoconsensus.errors import InputError

#: Integer fields lie in (-2**63, 2**63): what numpy and torch take as a seed or a size.
INT_LIMIT = 2**63


def positive(v: float) -> bool:
    """a finite positive number"""
    return math.isfinite(v) and v > 0


def non_negative(v: float) -> bool:
    """a finite number >= 0"""
    return math.isfinite(v) and v >= 0


def _convert(kind: str, value: Any) -> Any:
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError
        return value
    if kind == "int":  # inf, nan, 2.5 and integers beyond 64 bits are refused
        if isinstance(value, bool):
            raise ValueError
        number = value if isinstance(value, int) else float(value)
        if isinstance(number, float) and not (math.isfinite(number) and number.is_integer()):
            raise ValueError
        if not -INT_LIMIT < int(number) < INT_LIMIT:
            raise ValueError
        return int(number)
    if kind == "float":
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    if kind == "str" and not isinstance(value, str):
        raise ValueError
    return value


def dataclass_from_dict(cls: type, values: dict[str, Any], source: str | Path) -> Any:
    """Construct ``cls`` from ``values``, rejecting unknown, missing, mistyped or invalid fields."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(source, unknown[0], f"one of {sorted(known)}", "unknown field")
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        if name not in values:
            if f.default is dataclasses.MISSING:
                raise InputError(source, name, "a value (required field)", "missing")
            continue
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        try:
            value = _convert(kind, values[name])
        except (TypeError, ValueError, OverflowError):
            expected = "an integer below 2**63 in magnitude" if kind == "int" else f"a value of type {kind}"
            raise InputError(source, name, expected, values[name]) from None
        check = f.metadata.get("check")
        if check is not None and not check(value):
            raise InputError(source, name, (check.__doc__ or "a valid value (see docs)").strip(), value)
        kwargs[name] = value
    return cls(**kwargs)


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Parse a TOML file; a missing file or bad syntax becomes an InputError naming the file."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(path, "file", f"an existing {what} TOML file", "not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, "syntax", "valid TOML", str(exc)) from None
    except UnicodeDecodeError:
        raise InputError(path, "file", f"a {what} TOML text file (UTF-8)", "binary or other encoding") from None
    except OSError as exc:  # a folder, no permission
        raise InputError(path, "file", f"a readable {what} TOML file", exc.strerror or str(exc)) from None

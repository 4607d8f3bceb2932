"""Value parsers of the command line: numbers in a range, ``auto|LAMBDA``, a device name, ``NAME=PATH`` lists.

Each parser is an argparse ``type``: a bad value becomes argparse's one-line usage error (exit 2),
never a traceback. Integers are compared as integers (a 400-digit value is refused, not converted to
float), and every integer is below 2**63, the largest seed or count numpy and torch accept.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from tomoconsensus.devices import DEVICE_HELP, check_device
from tomoconsensus.errors import InputError

#: Integers the command line accepts are below this (torch.manual_seed, numpy sizes: signed 64-bit).
INT_LIMIT = 2**63


def number(kind: type, low: float | None = None, high: float | None = None, low_open: bool = True,
           what: str = ""):
    """An argparse type: a finite ``kind`` in (low, high] (or [low, high] if not ``low_open``); integers
    also lie in (-2**63, 2**63)."""
    def parse(text: str):
        try:
            value = kind(text)
        except (ValueError, OverflowError):  # also int("1e3"), and int strings over Python's digit limit
            raise argparse.ArgumentTypeError(f"expected {what}, got {_short(text)}") from None
        finite = abs(value) < INT_LIMIT if kind is int else math.isfinite(value)
        ok = finite and (high is None or value <= high) and \
            (low is None or (value > low if low_open else value >= low))
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {what}, got {_short(text)}")
        return value
    parse.__name__ = what
    return parse


def _short(text: str) -> str:
    """``text`` quoted, a very long one abbreviated (a 400-digit number stays one readable line)."""
    return repr(text) if len(text) <= 40 else repr(f"{text[:20]}...{text[-8:]}") + f" ({len(text)} characters)"


POSITIVE_INT = number(int, 0, what="an integer in [1, 2**63)")
NON_NEGATIVE_INT = number(int, 0, low_open=False, what="an integer in [0, 2**63)")
POSITIVE = number(float, 0, what="a finite number > 0")
NON_NEGATIVE = number(float, 0, low_open=False, what="a finite number >= 0")


def lamda_or_auto(text: str) -> str | float:
    """``auto`` or a data-consistency weight > 0 (its range is checked by :mod:`tomoconsensus.denoising`)."""
    return "auto" if text == "auto" else number(float, 0, what="auto or a weight > 0")(text)


def device(text: str) -> str:
    try:
        return check_device(text)
    except InputError:
        raise argparse.ArgumentTypeError(f"expected {DEVICE_HELP}, got {text!r}") from None


def input_paths(*paths) -> list[Path]:
    """The given paths (``None`` dropped) as :class:`~pathlib.Path`: the inputs an output must not replace."""
    return [Path(p) for p in paths if p is not None]


def _name_value(text: str, option: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    if not name.strip() or not value:
        raise InputError(option, text, "NAME=PATH with a non-empty name and path")
    return name.strip(), value


def named_values(items: list[str] | None, option: str) -> dict[str, str]:
    """NAME=PATH arguments as a dict; a repeated name is refused (it would silently drop one)."""
    out: dict[str, str] = {}
    for name, value in (_name_value(r, option) for r in items or []):
        if name in out:
            raise InputError(option, name, "each name once", "repeated")
        out[name] = value
    return out

"""Error types shared by every layer.

Every error about user input names *where* (file), *what* (field) and *what was expected*,
so that a physicist can fix the input without reading the code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class InputError(ValueError):
    """Bad user input: a file, a field in it, and what was expected.

    Parameters
    ----------
    source : str or Path or None
        File (or other origin, e.g. ``"--dose-fraction"``) the bad value came from.
    field : str
        Name of the field, dataset or argument.
    expected : str
        What a valid value looks like.
    got : object, optional
        What was found instead.
    """

    def __init__(self, source: str | Path | None, field: str, expected: str, got: object = None):
        self.source = str(source) if source is not None else "<input>"
        self.field = field
        self.expected = expected
        self.got = got
        msg = f"{self.source}: field '{field}': expected {expected}"
        if got is not None:
            msg += f", got {got!r}"
        super().__init__(msg)


class GeometryMismatchError(InputError):
    """Data whose shape does not match the geometry it is used with."""


def require_finite(array: np.ndarray, source: str | Path | None, field: str) -> None:
    """Raise InputError if ``array`` holds NaN or inf, saying how many entries are bad."""
    finite = np.isfinite(array)
    if not np.all(finite):
        bad = int(finite.size - np.count_nonzero(finite))
        raise InputError(source, field, "finite values (no NaN or inf)", f"{bad} non-finite values")

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
        super().__init__(one_line(msg))

    def __reduce__(self):  # raised in a worker process (prepare --jobs), re-raised whole in the parent
        return (type(self), (self.source, self.field, self.expected, self.got))


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) as one space: errors are one line."""
    return " ".join(str(text).split())


class RunError(RuntimeError):
    """A run that cannot go on (training diverged, a run folder in use): one line, exit 2 in the CLI.

    The message says what happened, what to change and what was kept.
    """

    def __init__(self, message: str):
        super().__init__(one_line(message))


class DiskFull(RunError):
    """No space left on a device (ENOSPC, EDQUOT) or a file-size limit reached (EFBIG) while writing an output.

    Raised by :mod:`tomoconsensus.atomic` after the partial output was removed; one line, exit 2.
    """


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM; ``signum`` is the signal, ``message`` what was saved (one line)."""

    def __init__(self, signum: int, message: str = ""):
        self.signum = signum
        self.message = one_line(message)
        super().__init__(self.message)


class GeometryMismatchError(InputError):
    """Data whose shape does not match the geometry it is used with."""


def require_finite(array: np.ndarray, source: str | Path | None, field: str) -> None:
    """Raise InputError if ``array`` holds NaN or inf, saying how many entries are bad."""
    finite = np.isfinite(array)
    if not np.all(finite):
        bad = int(finite.size - np.count_nonzero(finite))
        raise InputError(source, field, "finite values (no NaN or inf)", f"{bad} non-finite values")

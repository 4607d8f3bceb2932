"""Progress of long loops: a tqdm bar on a terminal, a plain line now and then anywhere else.

A bar redraws itself with carriage returns many times a second; written to a file (CI logs, batch jobs,
``> log.txt``) it becomes thousands of lines. When the output stream is not a terminal, :func:`progress`
therefore prints one complete line every ``every`` items (one epoch of training, a tenth of the slices)
and at the end::

    train consensus: step 40/400 (10%), 0:12 elapsed, 3.33 step/s, 1:48 left, total=0.0123
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

from tqdm.auto import tqdm


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, every: int | None = None, enabled: bool = True,
             file: IO[str] | None = None) -> tqdm | LineProgress:
    """Wrap ``iterable`` (or count ``update`` calls up to ``total``) with progress output.

    Parameters
    ----------
    total : int, optional
        Number of items; taken from ``len(iterable)`` when omitted.
    every : int, optional
        Items between two lines when ``file`` is not a terminal; default about a tenth of ``total``.
    enabled : bool
        False: no output at all.
    file : text stream, optional
        Default ``sys.stderr`` (where tqdm writes).

    Returns
    -------
    tqdm or LineProgress
        Both iterate like ``iterable`` and offer ``update(n)``, ``set_postfix(dict)`` and ``close()``.
    """
    file = sys.stderr if file is None else file
    if not enabled or file.isatty():
        return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, file=file, disable=not enabled,
                    dynamic_ncols=True)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, every=every, file=file)


class LineProgress:
    """tqdm's counting interface, printing one full line every ``every`` items and when ``total`` is reached."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, every: int | None = None, file: IO[str]) -> None:
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit, self.file = iterable, total, desc, unit, file
        self.n = self._first = initial
        self.every = max(1, every or math.ceil((total or 10) / 10))
        self.postfix = ""
        self._start = time.perf_counter()

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable:
            yield item
            self.update(1)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        before, self.n = self.n, self.n + n
        finished = self.total is not None and before < self.total <= self.n
        if finished or self.n // self.every > before // self.every:
            self.file.write(self.line() + "\n")
            self.file.flush()

    def set_postfix(self, values: dict[str, Any]) -> None:
        """Values shown at the end of the next line, as ``name=value``."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        """Nothing to clean up (lines are complete when written); present for tqdm compatibility."""

    def line(self) -> str:
        """``desc: unit n/total (pct), elapsed, rate, time left, postfix``."""
        elapsed = time.perf_counter() - self._start
        rate = (self.n - self._first) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.desc}: {self.unit} {self.n}" + (f"/{self.total}" if self.total is not None else "")]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        parts += [f"{tqdm.format_interval(elapsed)} elapsed", f"{rate:.3g} {self.unit}/s"]
        if self.total is not None and rate > 0:
            parts.append(f"{tqdm.format_interval(max(0, self.total - self.n) / rate)} left")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

"""Creating an output's missing parent folders, and removing them again when the output is abandoned.

Below :mod:`tomoconsensus.atomic` and :mod:`tomoconsensus.claims`, which both need it (one module, so
that neither imports the other for it).
"""

from __future__ import annotations

import contextlib
from pathlib import Path


def make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing ancestors; returns the folders created, outermost first."""
    missing = []
    for p in [folder, *folder.parents]:
        if p.exists():
            break
        missing.append(p)
    folder.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def remove_created(created: list[Path]) -> None:
    for p in reversed(created):
        with contextlib.suppress(OSError):
            p.rmdir()  # only if still empty

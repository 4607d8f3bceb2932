"""Memory estimates checked before PET arrays are allocated: a one-line refusal instead of a MemoryError.

A shape read from a file (a list-mode ``shape`` of 1e5 x 1e5) or an option (``--image-size 100000``)
fixes how much memory the preparation needs before anything is allocated. The estimate is compared
with the memory the system reports as available (Linux ``MemAvailable``; else physical pages).
"""

from __future__ import annotations

import os
from pathlib import Path

from tomoconsensus.errors import InputError

#: Bytes per sinogram bin while a prompt stack is prepared: prompts, delayed and each half's counts (int64),
#: m and a (float64), and the float64 temporaries of one reconstruction.
BYTES_PER_BIN = 8 * 8
#: Bytes per image pixel while a slice is reconstructed: x1, x2, x_est (float32) and the backprojection's
#: float32 / float64 temporaries (tomoconsensus.ct.fbp streams about a dozen N^2 arrays per view).
BYTES_PER_PIXEL = 4 * 32


def available_bytes() -> int:
    """Memory available to a new allocation, in bytes (``MemAvailable`` of /proc/meminfo where there is one)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def check_memory(needed_bytes: float, source, field: str, what: str) -> None:
    """Refuse (InputError) when ``needed_bytes`` exceed the available memory.

    Parameters
    ----------
    needed_bytes : float
        The estimate (a Python number: no integer overflow for huge shapes).
    source, field : where the size came from (file or option) and its name
    what : str
        What the memory is for, e.g. "a (1, 100000, 100000) prompt histogram".
    """
    available = available_bytes()
    if needed_bytes > available:
        raise InputError(source, field, f"a size whose preparation fits in memory ({gib(available)} available)",
                         f"{what}: about {gib(needed_bytes)}")

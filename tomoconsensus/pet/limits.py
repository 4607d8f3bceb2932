"""Memory estimates checked before PET arrays are allocated: a one-line refusal instead of a MemoryError.

A shape read from a file (a list-mode ``shape`` of 1e5 x 1e5) or an option (``--image-size 100000``)
fixes how much memory the preparation needs before anything is allocated. The estimate is compared
with the memory the system reports as available (:func:`tomoconsensus.hostmem.available_host_bytes`).
"""

from __future__ import annotations

from tomoconsensus.errors import InputError
from tomoconsensus.hostmem import available_host_bytes

#: Bytes per sinogram bin while a prompt stack is prepared: prompts, delayed and each half's counts (int64),
#: m and a (float64), and the float64 temporaries of one reconstruction.
BYTES_PER_BIN = 8 * 8
#: Bytes per image pixel while a slice is reconstructed: x1, x2, x_est (float32) and the backprojection's
#: float32 / float64 temporaries (tomoconsensus.tomo.fbp streams about a dozen N^2 arrays per view).
BYTES_PER_PIXEL = 4 * 32


available_bytes = available_host_bytes  # module name kept: callers and tests use it


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

"""Memory a new allocation on this host can take: the one reader behind every "would not fit" refusal.

Light on purpose (standard library only): the PET and MR readers, the lazy training data and the
training memory estimate all ask it, at every layer.
"""

from __future__ import annotations

import os
from pathlib import Path


def available_host_bytes() -> int:
    """``MemAvailable`` of /proc/meminfo in bytes; else the available physical pages; else 2**62
    (unknown: do not refuse)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return 1 << 62

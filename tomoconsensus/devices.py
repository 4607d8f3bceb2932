"""Device names, parsed the same way by every command.

``auto`` means the GPU when the library doing the work can use one, the CPU otherwise: torch for
FBP and the networks (``torch.cuda.is_available()``), SigPy for ESPIRiT and SENSE (CuPy installed
and a GPU visible; MR's SigPy device is chosen in its plugin). ``cuda`` is GPU 0, ``cuda:N`` GPU N.
"""

from __future__ import annotations

import re

from tomoconsensus.errors import InputError

DEVICE_HELP = "auto (GPU when available), cpu, cuda or cuda:N"
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device(name: str, source: str = "--device") -> str:
    """Return ``name`` if it is a device name (auto, cpu, cuda, cuda:N); else raise InputError."""
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise InputError(source, "device", DEVICE_HELP, name)
    return name


def torch_device(name: str, source: str = "--device"):
    """The torch device for ``name``; a GPU that is not there raises InputError."""
    import torch

    check_device(name, source)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(source, "device", "cpu or auto on a machine without a CUDA GPU", name)
        if (device.index or 0) >= count:
            raise InputError(source, "device", f"a GPU index below {count} (GPUs seen by torch)", name)
    return device

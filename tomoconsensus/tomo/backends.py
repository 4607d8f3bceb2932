"""Where the tomography operators compute: the one place that chooses their back ends.

* ASTRA projectors: the CUDA projector where ASTRA was built with CUDA and sees a GPU
  (:func:`cuda_available`), the CPU ``line`` / ``strip`` projectors otherwise (:func:`astra_projector_type`);
* FBP backprojection: the compiled Numba kernel on the CPU (:mod:`tomoconsensus.tomo.backproject`), the
  vectorised torch loop on a GPU or when asked for (:func:`backprojection_backend`, :func:`default_view_chunk`);
* curved-detector projection: Joseph's method on the CPU (:mod:`tomoconsensus.tomo.joseph`), ASTRA with
  resampling where ASTRA has CUDA (:func:`curved_projector_backend`).

Heavy libraries are imported inside the functions, so this module is light to import.
"""

from __future__ import annotations

from typing import Any


def cuda_available() -> bool:
    """True when ASTRA was built with CUDA and sees a GPU."""
    import astra

    try:
        return bool(astra.use_cuda())
    except Exception:  # astra raises on machines without a driver
        return False


def astra_projector_type(fan: bool, kind: str, use_cuda: bool) -> str:
    """ASTRA projector name: ``cuda`` on the GPU; on the CPU ``kind`` (``line`` or ``strip``), with the
    ``_fanflat`` suffix for a fan beam."""
    if use_cuda:
        return "cuda"
    return f"{kind}_fanflat" if fan else kind


def backprojection_backend(backend: str | None, device: Any) -> str:
    """FBP backprojection: ``numba`` (compiled, the CPU default) or ``torch`` (GPUs, or asked for)."""
    kind = getattr(device, "type", str(device).partition(":")[0])
    chosen = backend or ("numba" if kind == "cpu" else "torch")
    if chosen not in ("numba", "torch") or (chosen == "numba" and kind != "cpu"):
        raise ValueError(f"backend: expected 'torch', or 'numba' on the CPU, got {backend!r} on {device}")
    return chosen


def default_view_chunk(device: Any, on_cpu: int) -> int:
    """Views the torch backprojection loop takes at once: ``on_cpu`` on the CPU (temporaries stay in cache),
    64 on a GPU (wide launches)."""
    return on_cpu if getattr(device, "type", str(device).partition(":")[0]) == "cpu" else 64


def curved_projector_backend(backend: str | None, use_cuda: bool) -> str:
    """Curved-detector projection: ``joseph`` (the CPU default) or ``astra`` (the default with CUDA)."""
    chosen = backend or ("astra" if use_cuda else "joseph")
    if chosen not in ("joseph", "astra"):
        raise ValueError(f"backend: expected 'joseph' or 'astra', got {chosen!r}")
    return chosen

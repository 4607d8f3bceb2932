"""Data consistency after the networks, with its weight chosen on held-out raw data.

A network's output z is pulled back onto the acquired measurement of the same slice,
``x = argmin ||A x - y||^2 + lam ||x - z||^2`` (e.g. for Cartesian k-space A = M F S, the acquired
lines, Fourier transform and coil maps), as the paper's discussion (sec. 5) suggests. It needs the
measurement kept in the prepared file (``prepare NAME --keep-measurement``).

``lam`` is chosen without a clean reference (:func:`choose_lamda`): on a held-out *noisy* file, the
solution from one half's lines, with the network output from that half's data only, predicts the
other half's outer lines, whose noise it has not seen; the lam with the smallest error over both
directions and all slices is kept. A modality offers the step through two methods of its class,
``consistent(image, arrays, lam)`` and ``heldout_error(prior1, prior2, arrays, lams)``: the
``refiner`` part of its plugin (:mod:`tomoconsensus.registry`; nothing here names a modality).
"""

from __future__ import annotations

import numpy as np
import torch

from tomoconsensus import methods, registry
from tomoconsensus.data.prepared import PreparedDataset, read_measurement
from tomoconsensus.errors import InputError, require_finite

#: Candidate weights (k-space units squared per image pixel); inf = the network output unchanged.
LAMDAS = (*np.logspace(-4, 1, 11).tolist(), float("inf"))
#: Weights a user may give: beyond 1e6 the network output is kept unchanged to 6 digits (and 1e300
#: overflows the float32 solve into NaN); below 1e-6 the solve is ill-conditioned ((1 + lam) / lam).
LAMDA_RANGE = (1e-6, 1e6)


def check_lamda(lamda: float, source: str = "--data-consistency") -> float:
    """``lamda`` if it lies in :data:`LAMDA_RANGE` (inf: the network output unchanged); else InputError."""
    low, high = LAMDA_RANGE
    if not (np.isinf(lamda) and lamda > 0) and not low <= lamda <= high:
        raise InputError(source, "lambda", f"a weight in [{low:g}, {high:g}] (or auto)", lamda)
    return float(lamda)


def refiner(data: PreparedDataset):
    """The modality class that performs the step, and the file's measurement arrays (named errors)."""
    cls = registry.part_for(data.modality, "refiner", data.path, "modality", "a modality with data consistency "
                            "({names})")
    arrays = read_measurement(data.path)
    if not arrays:
        raise InputError(data.path, "measurement", "the raw measurement kept in the prepared file (prepare it "
                         "with --keep-measurement)", "none")
    for name, array in arrays.items():  # a NaN there would make every output pixel NaN
        if np.asarray(array).dtype.kind in "fc":
            require_finite(array, data.path, f"measurement/{name}")
    return cls, arrays


def _slice(arrays: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    return {k: v[i] for k, v in arrays.items()}


@torch.no_grad()
def choose_lamda(method: str, models, val: PreparedDataset, device: torch.device | str = "cpu",
                 lamdas=LAMDAS, refined=None) -> tuple[float, list[float]]:
    """The lam of ``lamdas`` with the smallest held-out-line error on the noisy file ``val``; and the errors.

    ``refined``: ``refiner(val)`` where the caller already has it (the measurement is read once).
    """
    cls, arrays = refined or refiner(val)
    total = np.zeros(len(lamdas))
    for i in range(len(val)):
        x1, x2 = (torch.from_numpy(getattr(val, k)[i:i + 1]).to(device) for k in ("x1", "x2"))
        p1, p2 = (p[0].float().cpu().numpy() for p in methods.half_outputs(method, models, x1, x2))
        total += cls.heldout_error(p1, p2, _slice(arrays, i), lamdas)
    return float(lamdas[int(np.argmin(total))]), total.tolist()


def apply_consistency(images: np.ndarray, data: PreparedDataset, lamda: float, refined=None) -> np.ndarray:
    """(slices, C, H, W) outputs for ``data``'s slices -> their data-consistent versions (same units).

    ``refined``: ``refiner(data)`` where the caller already has it.
    """
    check_lamda(lamda)
    if np.isinf(lamda):
        return images
    cls, arrays = refined or refiner(data)
    return np.stack([cls.consistent(im, _slice(arrays, i), lamda) for i, im in enumerate(images)]).astype(np.float32)

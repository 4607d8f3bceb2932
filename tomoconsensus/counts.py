"""Raw photon counts (PET prompts, photon-counting CT bins): validation and binomial thinning.

If ``y ~ Poisson(lambda)`` and, given ``y``, ``y1 ~ Binomial(y, 1/2)`` and ``y2 = y - y1``, then
``y1`` and ``y2`` are *independent* ``Poisson(lambda / 2)`` variables (Poisson thinning; e.g.
Leiner et al., "Data fission", 2023). Only raw counts can be thinned: corrected, scaled or smoothed
data are not Poisson, and their binomial split would not give independent halves.
"""

from __future__ import annotations

import numpy as np

from tomoconsensus.errors import InputError, require_finite


def as_counts(values: np.ndarray, source, field: str) -> np.ndarray:
    """Raw counts as int64; fractional, negative or non-finite values raise InputError.

    Only raw counts can be thinned (docs/pet.md): corrected, scaled or smoothed sinograms are not
    Poisson, and their binomial split would not give independent halves.
    """
    values = np.asarray(values)
    if values.dtype.kind in "iu":
        counts = values.astype(np.int64)
    else:
        if values.dtype.kind not in "fb":
            raise InputError(source, field, "integer counts", str(values.dtype))
        require_finite(values, source, field)
        fractional = int(np.count_nonzero(values != np.round(values)))
        if fractional:
            raise InputError(source, field, "non-negative integer counts (raw counts, before any correction)",
                             f"{fractional} fractional values, e.g. {values[values != np.round(values)].flat[0]:g}")
        counts = values.astype(np.int64)
    if counts.size and counts.min() < 0:
        raise InputError(source, field, "non-negative integer counts", f"{int((counts < 0).sum())} negative values, "
                         f"minimum {int(counts.min())}")
    return counts


def binomial_thin(counts: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Split raw counts into ``y1 ~ Binomial(y, p)`` and ``y2 = y - y1``.

    Parameters
    ----------
    counts : ndarray of non-negative integers, any shape
        Raw counts (validate with :func:`as_counts`).
    rng : numpy Generator
    p : float
        Probability that one count goes to the first half.

    Returns
    -------
    y1, y2 : ndarray, int64, the shape of ``counts``; ``y1 + y2 == counts`` exactly.
    """
    counts = np.asarray(counts, dtype=np.int64)
    y1 = rng.binomial(counts, p).astype(np.int64)
    return y1, counts - y1

"""Binomial thinning of raw counts: two independent Poisson halves with half the mean each.

If ``y ~ Poisson(lambda)`` and, given ``y``, ``y1 ~ Binomial(y, 1/2)`` and ``y2 = y - y1``, then
``y1`` and ``y2`` are *independent* ``Poisson(lambda / 2)`` variables (Poisson thinning; e.g.
Leiner et al., "Data fission", 2023). It is exactly what a random assignment of each list-mode event
to one of two halves produces. Consequences used by :mod:`tomoconsensus.pet.recon`:

* the corrections of a half are the full data's multiplicative factor ``m`` (shared: it multiplies
  the activity in both halves) and *half* the expected additive term ``a / 2``, because
  ``E[y_k] = (m A x + a) / 2``;
* a measured (noisy) delayed-window randoms sinogram is itself a count and would be thinned the
  same way; a smooth randoms/scatter *estimate* is an expectation and is halved.

Alternating list-mode events (odd/even) do *not* give independent halves: odd and even events
share the total count (``y1 = ceil(y / 2)`` given ``y``). Alternating time frames do, for a static
tracer, but their means differ by the decay (weighted in :mod:`tomoconsensus.pet.frames`) and by
any kinetics or motion (not correctable there).
"""

from __future__ import annotations

import numpy as np

from tomoconsensus.counts import binomial_thin  # noqa: F401 - the split itself lives with the counts


def assign_events(bin_index: np.ndarray, n_bins: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """List-mode split: each event goes to half 1 or 2 with probability 1/2, then is histogrammed.

    Equivalent in distribution to :func:`binomial_thin` of the histogram (used to test it).

    Parameters
    ----------
    bin_index : ndarray (events,) of int in [0, n_bins)
    n_bins : int

    Returns
    -------
    h1, h2 : ndarray (n_bins,), int64
    """
    return histogram_halves(bin_index, rng.random(len(bin_index)) < 0.5, n_bins)


def histogram_halves(bin_index: np.ndarray, first: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Histograms (n_bins,) int64 of the events in half 1 (``first`` True) and in half 2 (the rest).

    Parameters
    ----------
    bin_index : ndarray (events,) of int in [0, n_bins)
    first : ndarray (events,) of bool
    n_bins : int
    """
    index = np.asarray(bin_index)
    return (np.bincount(index[first], minlength=n_bins).astype(np.int64),
            np.bincount(index[~first], minlength=n_bins).astype(np.int64))

"""Random Cartesian undersampling along the phase-encode axis, and its split into two halves.

The 4x mask keeps the central ``center_lines`` lines and draws exactly
``round(n / R) - center_lines`` of the outer lines. Each outer line i is drawn with a known
*inclusion probability* p_i (uniform: all equal; variable density: decaying with |k|), using
systematic PPS sampling over a random permutation of the lines, which gives a fixed number of lines
*and* exactly the requested p_i. The sampled outer lines are then split at random into two halves of
m1 = m // 2 and m - m1 lines (m sampled outer lines, fixed by the design), so half 1 contains line i
with probability p_i m1 / m (= p_i / 2 for even m).

Weighting the zero-filled outer k-space of a half by 1 / (p_i / 2) makes its expectation over masks
equal to the fully sampled k-space (the centre is always sampled, weight 1): each half's
zero-filled reconstruction is then unbiased, with zero-mean aliasing.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from tomoconsensus.errors import InputError


class SplitMask(NamedTuple):
    """A 4x mask, its two halves, and per-line weights that make each half unbiased.

    All arrays have shape (n_lines,) along the phase-encode axis.
    """

    mask: np.ndarray  # bool, union of both halves
    half1: np.ndarray  # bool
    half2: np.ndarray  # bool
    probability: np.ndarray  # inclusion probability of each line in the 4x mask (1 in the centre)
    weight_half1: np.ndarray  # 1 / P(line in half 1): 1 in the centre, m / (m1 p) outside
    weight_half2: np.ndarray  # 1 / P(line in half 2)
    weight_full: np.ndarray  # 1 / p: unbiased weighting of the 4x data


def center_lines_mask(n_lines: int, center_lines: int) -> np.ndarray:
    """Boolean (n_lines,) with the ``center_lines`` lines around k = 0 (index n // 2)."""
    centre = np.zeros(n_lines, bool)
    start = n_lines // 2 - center_lines // 2
    centre[start:start + center_lines] = True
    return centre


def check_design(n_lines: int, acceleration: float, center_lines: int, source=None) -> None:
    """Refuse a mask design that cannot give two different, unbiased halves (InputError naming the option).

    With ``n_total = round(n / R)`` lines, the ``center_lines`` central ones in both halves, the
    ``n_total - center_lines`` outer lines are what the halves split: at least 2 are needed, or
    the halves are identical (no independent noise: the method's assumption is void).
    """
    if not (math.isfinite(acceleration) and acceleration > 1):
        raise InputError(source, "--acceleration", "a finite number > 1", acceleration)
    if not 0 < center_lines < n_lines:
        raise InputError(source, "--center-lines", f"between 1 and {n_lines - 1} (the k-space has {n_lines} "
                         "phase-encode lines)", center_lines)
    n_total = int(round(n_lines / acceleration))
    if n_total < 3:  # no --center-lines can help: the acceleration keeps too few lines
        raise InputError(source, "--acceleration", f"below {n_lines / 2.5:g} for {n_lines} phase-encode lines (the "
                         "mask keeps round(lines / acceleration) lines: at least 1 central line and 2 outer ones for "
                         "the halves to split)", acceleration)
    if n_total - center_lines < 2:
        raise InputError(source, "--center-lines", f"fewer than {n_total - 1}: {acceleration:g}x of {n_lines} lines "
                         f"keeps {n_total}, and the halves split only the lines outside the centre (with "
                         f"{n_total - center_lines} outer lines they would be identical or empty)", center_lines)


def outer_probabilities(n_lines: int, acceleration: float, center_lines: int,
                        variable_density: float = 0.0) -> np.ndarray:
    """Inclusion probability of every line (1 in the centre), summing to round(n / R) lines.

    ``variable_density`` = 0 gives uniform probabilities; d > 0 makes them proportional to
    ``|k|^-d`` (capped at 1, the excess redistributed).
    """
    n_total = int(round(n_lines / acceleration))
    centre = center_lines_mask(n_lines, center_lines)
    n_outer = n_total - center_lines
    if n_outer < 0 or n_outer > (~centre).sum():
        raise ValueError(f"acceleration {acceleration} with {center_lines} centre lines is impossible for "
                         f"{n_lines} phase-encode lines")
    k = np.abs(np.arange(n_lines) - n_lines // 2).astype(float)
    shape = np.where(centre, 0.0, np.maximum(k, 1.0) ** -variable_density)
    prob = np.zeros(n_lines)
    free = ~centre
    remaining = float(n_outer)
    for _ in range(n_lines):  # cap at 1 and redistribute (terminates in a few rounds)
        prob[free] = remaining * shape[free] / shape[free].sum()
        over = free & (prob > 1)
        if not over.any():
            break
        prob[over] = 1.0
        free &= ~over
        remaining = n_outer - (~centre & ~free).sum()
    prob[centre] = 1.0
    return prob


def systematic_sample(probability: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fixed-size random sample with exact inclusion probabilities (systematic PPS, random order)."""
    order = rng.permutation(len(probability))
    cumulative = np.concatenate([[0.0], np.cumsum(probability[order])])
    start = rng.uniform()
    n = int(round(cumulative[-1]))
    points = start + np.arange(n)
    picked = np.searchsorted(cumulative, points, side="right") - 1
    chosen = np.zeros(len(probability), bool)
    chosen[order[picked]] = True
    return chosen


def split_outer_lines(mask: np.ndarray, centre: np.ndarray, prob: np.ndarray, rng: np.random.Generator) -> SplitMask:
    """Split the sampled outer lines of ``mask`` into two equal random halves; weights from ``prob``.

    ``prob`` is each line's inclusion probability in ``mask`` (1 in the centre). Half 1 holds m1 =
    m // 2 of the m sampled outer lines, so P(line in half 1) = p m1 / m, and its weight is the inverse.
    """
    sampled = rng.permutation(np.flatnonzero(mask & ~centre))
    m, m1 = len(sampled), len(sampled) // 2  # m is fixed by the design, so m1 / m is exact
    half1 = centre.copy()
    half1[sampled[:m1]] = True
    half2 = centre.copy()
    half2[sampled[m1:]] = True
    with np.errstate(divide="ignore"):
        weight_full = np.where(centre, 1.0, 1.0 / prob)
        weight_half1 = np.where(centre, 1.0, m / max(m1, 1) / prob)
        weight_half2 = np.where(centre, 1.0, m / max(m - m1, 1) / prob)
    return SplitMask(mask, half1, half2, prob, weight_half1, weight_half2, weight_full)


def split_centre_lines(design: SplitMask, centre: np.ndarray, rng: np.random.Generator) -> SplitMask:
    """``design`` with its ``centre`` lines split at random as well: the halves then share no line.

    Half 1 takes c1 = c // 2 of the c central lines (uniformly at random), half 2 the others, each
    weighted by the inverse of its inclusion probability, c / c1 and c / (c - c1) (2 for even c), so each
    half stays unbiased and the halves' noise is independent (for white k-space noise). The outer lines,
    their split and their weights are those of ``design``; ``rng`` draws only the centre's split.
    Not for training: the halves' low-frequency aliasing is then predictable from the other half
    (docs/mr-simulation.md, ``benchmarks/results/mr_centre_split.json``).
    """
    lines = rng.permutation(np.flatnonzero(centre))
    c, c1 = len(lines), len(lines) // 2
    half1, half2 = design.half1 & ~centre, design.half2 & ~centre
    half1[lines[:c1]], half2[lines[c1:]] = True, True
    weight1 = np.where(centre, c / max(c1, 1), design.weight_half1)
    weight2 = np.where(centre, c / max(c - c1, 1), design.weight_half2)
    return design._replace(half1=half1, half2=half2, weight_half1=weight1, weight_half2=weight2)


def random_split_mask(n_lines: int, rng: np.random.Generator, acceleration: float = 4.0,
                      center_lines: int = 48, variable_density: float = 0.0) -> SplitMask:
    """Draw a 4x mask (exact line count) and split its outer lines into two equal random halves."""
    prob = outer_probabilities(n_lines, acceleration, center_lines, variable_density)
    centre = center_lines_mask(n_lines, center_lines)
    outer = systematic_sample(np.where(centre, 0.0, prob), rng)
    return split_outer_lines(outer | centre, centre, prob, rng)


def split_acquired_mask(acquired: np.ndarray, center_lines: int, rng: np.random.Generator, source=None) -> SplitMask:
    """Split a scanner's own (prospective) undersampling: the file's acquired lines, not a drawn mask.

    The ``center_lines`` central lines must all be acquired (both halves keep them); the acquired
    outer lines are split at random. Their inclusion probability is taken as *uniform*,
    p = (acquired outer lines) / (outer lines), as for a mask drawn uniformly at random: then each
    half is unbiased over the scanner's masks as in :func:`random_split_mask`. For a regular
    (e.g. GRAPPA every-R-th-line) or variable-density pattern this weighting is an assumption, and
    each half is unbiased only over the random split, i.e. for the acquired data (say so in a report).
    """
    n_lines = len(acquired)
    centre = center_lines_mask(n_lines, center_lines)
    if not acquired[centre].all():
        raise InputError(source, "acquired lines", f"all {center_lines} central lines acquired (--center-lines; "
                         "both halves keep them)", f"{int((~acquired[centre]).sum())} of them missing")
    outer = acquired & ~centre
    if outer.sum() < 2:
        raise InputError(source, "acquired lines", "at least 2 acquired lines outside the central ones (the "
                         "halves split only those)", int(outer.sum()))
    prob = np.where(centre, 1.0, outer.sum() / (~centre).sum())
    return split_outer_lines(acquired, centre, prob, rng)

"""Time-frame alternation of list-mode events: frames, half assignment and decay weights.

Math
----
An acquisition of duration ``D`` is cut into frames ``j = [jF, (j+1)F) ∩ [0, D)`` of length ``F``
(the last one may be shorter). Events of even frames form half 1, of odd frames half 2.

For a **static** tracer distribution the prompts of a bin form a Poisson process in time with rate
``r(t) = (m A x + a) exp(-λ t) / (D_1 + D_2)``, ``λ = ln 2 / T`` the decay constant of the half-life
``T`` (``λ = 0``: no decay). Counts in disjoint time intervals of a Poisson process are independent
Poisson variables, so the halves are independent (exact) with means

    E[y_k] = w_k (m A x + a),   w_k = D_k / (D_1 + D_2),   D_k = Σ_{j in half k} ∫_j exp(-λ t) dt,

with ``∫_{t0}^{t1} exp(-λ t) dt = exp(-λ t0) (1 - exp(-λ (t1 - t0))) / λ`` (``t1 - t0`` for ``λ = 0``).
Half ``k`` therefore keeps ``m``, carries the additive expectation ``a w_k`` and is reconstructed
with the scale ``1 / w_k`` (binomial thinning: ``w_k = 1/2``, scale 2), so that ``x1``, ``x2`` and
``x_est`` (all prompts, unscaled) estimate the same image, and ``w1 x1 + w2 x2 = x_est`` for a
linear reconstruction.

Caveat
------
Independence and equal means hold only for a static distribution whose decay is described by
``w_k``. Without ``half_life_s`` the weights are the time shares, and half 1 (which starts first)
has the larger mean: its ratio to half 2 is ``D_1 / D_2`` (decayed) over the time-share ratio, for
F-18 (``T = 6586.2 s``) with 10 s frames over 10 min ``exp(λ F) = 1.00105`` (+0.05 % / -0.05 % of
``x_est``; 60 s frames: 1.0063), for O-15 (``T = 122.24 s``) with 10 s frames 1.058. Tracer
kinetics, motion, and changes of dead time or of the randoms fraction between frames also make
the halves' means differ; the consensus target is then biased by the difference. With the
half-life given and a static tracer the halves are unbiased. The randoms rate falls like the
singles rate squared (``2 λ``), so ``a w_k`` is exact for scatter and, for randoms, off by about
the uncorrected decay's share: ±0.05 % of the randoms per half for F-18 with 10 s frames, ±2.8 %
for O-15. See docs/pet.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tomoconsensus.errors import InputError
from tomoconsensus.pet.thinning import histogram_halves

#: Most frames accepted (their edges are held in memory; 1e-300 s frames would need ~1e300).
MAX_FRAMES = 1_000_000
#: Least share of the expected counts a half must get: below it the half's image is scaled by > 10 and its noise
#: variance is > 9 times the other half's (e.g. 0.01 s half-life with 1 s frames: w2 ~ 1e-30, x2 scaled ~1e30).
MIN_HALF_WEIGHT = 0.1
#: Half-life of F-18 in s (the value a physicist passes as ``--half-life-s``; NIST/DDEP 109.77 min).
F18_HALF_LIFE_S = 6586.2


def interval_integrals(edges_s: np.ndarray, decay_per_s: float) -> np.ndarray:
    """``∫ exp(-λ t) dt`` over each interval ``[edges[i], edges[i+1])``.

    Parameters
    ----------
    edges_s : ndarray (n + 1,), s, increasing
    decay_per_s : float
        ``λ`` in 1/s, >= 0 (0: the interval lengths).

    Returns
    -------
    ndarray (n,), s
    """
    edges = np.asarray(edges_s, dtype=np.float64)
    if decay_per_s == 0:
        return np.diff(edges)
    with np.errstate(over="ignore", under="ignore"):  # exp(-λ t) -> 0 for a very short half-life
        return np.exp(-decay_per_s * edges[:-1]) * -np.expm1(-decay_per_s * np.diff(edges)) / decay_per_s


@dataclass(frozen=True)
class TimeFrames:
    """Alternating time frames of ``frame_s`` over ``[0, duration_s)``; decay half-life or none.

    Parameters
    ----------
    frame_s : float
        Frame length F in s, > 0 and < ``duration_s`` (at least two frames).
    duration_s : float
        Acquisition duration D in s (the prompt file's attribute ``duration_s``).
    half_life_s : float or None
        Half-life T in s used in the weights; None: no decay correction (``λ = 0``).
    """

    frame_s: float
    duration_s: float
    half_life_s: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.frame_s) and 0 < self.frame_s < self.duration_s):
            raise InputError("--frame-s", "frame-s", f"a frame length in s > 0 and < the acquisition's duration_s "
                             f"{self.duration_s:g} s (at least two frames)", self.frame_s)
        if self.duration_s / self.frame_s > MAX_FRAMES:
            raise InputError("--frame-s", "frame-s", f"at most {MAX_FRAMES:,} frames over {self.duration_s:g} s "
                             f"(frames of >= {self.duration_s / MAX_FRAMES:.3g} s)", self.frame_s)
        if self.half_life_s is not None and not (math.isfinite(self.half_life_s) and self.half_life_s > 0
                                                 and math.isfinite(math.log(2.0) / self.half_life_s)):
            raise InputError("--half-life-s", "half-life-s", "a half-life in s > 0", self.half_life_s)
        with np.errstate(all="ignore"):
            d1, d2 = self.half_integrals()
            w = (d1 / (d1 + d2), d2 / (d1 + d2)) if d1 + d2 > 0 else (math.nan, math.nan)
        if not all(math.isfinite(x) and x >= MIN_HALF_WEIGHT for x in w):
            decay = "" if self.half_life_s is None else f", half-life {self.half_life_s:g} s"
            raise InputError("--frame-s/--half-life-s", "half-life-s", f"frames and half-life that give each half at "
                             f"least {MIN_HALF_WEIGHT:.0%} of the expected counts (a half's image is scaled by 1/w_k)",
                             f"w1 = {w[0]:.3g}, w2 = {w[1]:.3g} (frames of {self.frame_s:g} s{decay})")

    @property
    def decay_per_s(self) -> float:
        """``λ = ln 2 / T`` in 1/s (0 without a half-life)."""
        return 0.0 if self.half_life_s is None else math.log(2.0) / self.half_life_s

    def edges_s(self) -> np.ndarray:
        """Frame boundaries (frames + 1,) in s: 0, F, 2F, ..., D."""
        n = math.ceil(self.duration_s / self.frame_s)
        return np.minimum(np.arange(n + 1) * self.frame_s, self.duration_s)

    def half_integrals(self, decay_per_s: float | None = None) -> tuple[float, float]:
        """``(D_1, D_2)`` in s: the decayed durations of even and odd frames (``λ`` of the half-life
        unless ``decay_per_s`` is given)."""
        lam = self.decay_per_s if decay_per_s is None else decay_per_s
        d = interval_integrals(self.edges_s(), lam)
        return float(d[0::2].sum()), float(d[1::2].sum())

    def weights(self) -> tuple[float, float]:
        """``(w1, w2)``: each half's share of the expected counts, ``w1 + w2 = 1``."""
        d1, d2 = self.half_integrals()
        return d1 / (d1 + d2), d2 / (d1 + d2)

    def half_of(self, time_s: np.ndarray) -> np.ndarray:
        """0 (half 1, even frames) or 1 (half 2, odd frames) for event times (events,) in s."""
        return (np.floor_divide(np.asarray(time_s, np.float64), self.frame_s).astype(np.int64) % 2).astype(np.int8)

    def split_events(self, bin_index: np.ndarray, time_s: np.ndarray, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Histograms of the two halves.

        Parameters
        ----------
        bin_index : ndarray (events,) of int
            Flat index of each event into ``shape`` (C order).
        time_s : ndarray (events,), s, in [0, duration_s)
        shape : tuple
            (slices, views, bins).

        Returns
        -------
        y1, y2 : ndarray ``shape``, int64; ``y1 + y2`` is the histogram of all events
        """
        h1, h2 = histogram_halves(bin_index, self.half_of(time_s) == 0, int(np.prod(shape)))
        return h1.reshape(shape), h2.reshape(shape)

    def describe(self) -> str:
        """The split as recorded in a prepared file."""
        w1, w2 = self.weights()
        decay = ("no decay correction (weights = time shares)" if self.half_life_s is None
                 else f"decay half-life {self.half_life_s:g} s")
        return (f"time frames of {self.frame_s:g} s over {self.duration_s:g} s, alternating (even frames -> x1, "
                f"odd -> x2); {decay}; weights w1 = {w1:.6f}, w2 = {w2:.6f}; m shared, a*w_k per half; "
                "half k scaled 1/w_k")

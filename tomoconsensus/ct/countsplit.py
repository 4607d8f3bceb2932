"""Count-domain split of CT data: both halves keep every view (``prepare ct --split thinning``).

The odd/even view split gives halves that differ by a *deterministic* term (each half's view
aliasing), which the consensus loss can reward the networks for swapping; its held-out value then
stops tracking the clean error late in training (docs/method.md, 'Choosing without a reference').
Splitting each reading's *counts* instead gives two halves with every view and no deterministic
difference.

With the measurement model of :mod:`tomoconsensus.ct.noise`, one reading is
``N = P + e``, ``P ~ Poisson(lambda)``, ``e ~ Normal(0, sigma_e^2)``. The halves are

    N1 = B + (e + z) / 2,    N2 = (P - B) + (e - z) / 2,
    B ~ Binomial(P, 1/2),    z ~ Normal(0, sigma_e^2)   (independent of everything else)

``B`` and ``P - B`` are independent ``Poisson(lambda / 2)`` (Poisson thinning, :mod:`tomoconsensus.counts`);
``(e + z) / 2`` and ``(e - z) / 2`` are jointly Gaussian with covariance ``(sigma_e^2 - sigma_e^2) / 4 = 0``,
hence independent (a recorrupted pair). So ``N1`` and ``N2`` are independent, identically distributed,
each of mean ``lambda / 2``: exactly a half-dose reading with electronic noise ``sigma_e / sqrt(2)``.

This needs the Poisson part ``P`` apart from ``e``, which only a simulation has. For measured counts
(``N`` alone, e.g. ``I0 exp(-p)`` of a raw scan with known ``I0``) :func:`recorrupt_counts` uses
``N1,2 = (N +- z) / 2`` with ``z ~ Normal(0, max(N, 0) + sigma_e^2)``: the halves are uncorrelated
(``Cov = (Var N - E[max(N,0) + sigma_e^2]) / 4 ~ 0``) and Gaussian-independent, but not exactly
independent at a few photons per reading.

Each half is log-transformed against half the incident photons, ``p_k = -ln(max(2 N_k, 1) / I0)``
(the one-photon floor of the full reading), and reconstructed by the FBP of *all* views. ``x_est``
is the FBP of ``p = -ln(max(N, 1) / I0)``, the same image as the view split's ``x_est`` for the same
counts. Halving the counts doubles the log's low-count bias (about ``1 / (2 lambda)`` per ray;
both halves equally, so ``E[x1] = E[x2]`` still holds).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from tomoconsensus.choices import MEAN_INPUT_X_EST
from tomoconsensus.counts import binomial_thin
from tomoconsensus.ct.modality import CTModality
from tomoconsensus.ct.noise import counts_to_line_integrals, detector_readings
from tomoconsensus.modality import SplitImages

SPLIT_DESCRIPTION = ("x1, x2 = binomial thinning of every reading's photon counts (all views in each half), "
                     "electronic noise split as a recorrupted pair (e +- z)/2; x_est = FBP of all counts")


class CountSinogram(NamedTuple):
    """One slice's detector readings before the log (views, channels).

    Attributes
    ----------
    poisson : ndarray of int64 or None
        Detected photons without electronic noise (a simulation's ``P``); None for measured counts.
    counts : ndarray of float64
        What the detector reports, ``P + e`` (photons; may be < 0 through electronic noise).
    i0 : ndarray of float64
        Incident photons of each reading, broadcast against ``counts`` (e.g. ``(channels,)``).
    electronic_noise_std : float
        ``sigma_e`` in photons.
    split_seed : int or None
        Seed of this slice's thinning (a simulation draws it from the slice's own stream, so the split
        does not depend on which process prepares which slice); None: the preparation's generator.
    """

    poisson: np.ndarray | None
    counts: np.ndarray
    i0: np.ndarray
    electronic_noise_std: float
    split_seed: int | None = None


def simulate_count_sinogram(line_integrals: np.ndarray, i0: np.ndarray, electronic_noise_std: float,
                            rng: np.random.Generator) -> CountSinogram:
    """Readings of noiseless ``line_integrals`` (views, channels), drawn by
    :func:`tomoconsensus.ct.noise.detector_readings` (the view split's draws: same counts for the same
    generator state)."""
    poisson, counts = detector_readings(line_integrals, i0, electronic_noise_std, rng)
    return CountSinogram(poisson, counts, np.asarray(i0, dtype=np.float64), float(electronic_noise_std))


def thin_counts(m: CountSinogram, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The two half readings ``(N1, N2)`` (module docstring), float64 of the shape of ``m.counts``.

    ``N1 + N2 == m.counts`` exactly (to float64 round-off). Exact independence needs ``m.poisson``;
    without it the measured-counts rule of :func:`recorrupt_counts` is used.
    """
    if m.poisson is None:
        return recorrupt_counts(m.counts, m.electronic_noise_std, rng)
    b1, b2 = binomial_thin(m.poisson, rng)
    electronic = m.counts - m.poisson
    z = rng.normal(0.0, m.electronic_noise_std, size=electronic.shape) if m.electronic_noise_std > 0 else 0.0
    return b1 + (electronic + z) / 2.0, b2 + (electronic - z) / 2.0


def recorrupt_counts(counts: np.ndarray, electronic_noise_std: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Halves of measured readings ``N`` (photons): ``(N + z) / 2`` and ``(N - z) / 2``,
    ``z ~ Normal(0, max(N, 0) + sigma_e^2)`` (the plug-in variance of ``N``)."""
    counts = np.asarray(counts, dtype=np.float64)
    z = rng.normal(0.0, 1.0, size=counts.shape) * np.sqrt(np.maximum(counts, 0.0) + electronic_noise_std**2)
    return (counts + z) / 2.0, (counts - z) / 2.0


def thin_fraction(m: CountSinogram, fraction: float,
                  rng: np.random.Generator) -> tuple[CountSinogram, CountSinogram]:
    """Split a simulated scan into independent scans with ``fraction`` and ``1 - fraction`` of its dose.

    ``N_a = B + f e + sqrt(f (1 - f)) z``, ``N_b = (P - B) + (1 - f) e - sqrt(f (1 - f)) z``,
    ``B ~ Binomial(P, f)``, ``z ~ Normal(0, sigma_e^2)``: ``B`` and ``P - B`` are independent
    ``Poisson(f lambda)``, ``Poisson((1 - f) lambda)``; the Gaussian parts have variances ``f sigma_e^2``,
    ``(1 - f) sigma_e^2`` and covariance ``f (1 - f) sigma_e^2 - f (1 - f) sigma_e^2 = 0``. Each part is
    a complete scan (incident photons ``f I0``, electronic noise ``sqrt(f) sigma_e``), so it can be split
    again. Needs the Poisson part (a simulation); ``fraction`` in (0, 1).

    Used to hold out a *target* scan for no-reference comparisons of outputs that take the rest of the
    data (benchmarks/output_variant_choice.py).
    """
    if m.poisson is None or not 0.0 < fraction < 1.0:
        raise ValueError("thin_fraction needs a simulated scan (its Poisson part) and a fraction in (0, 1)")
    b = rng.binomial(m.poisson, fraction)
    electronic = m.counts - m.poisson
    s = m.electronic_noise_std
    z = rng.normal(0.0, s, size=electronic.shape) * np.sqrt(fraction * (1.0 - fraction)) if s > 0 else 0.0
    parts = []
    for f, poisson, gauss in ((fraction, b, fraction * electronic + z),
                              (1.0 - fraction, m.poisson - b, (1.0 - fraction) * electronic - z)):
        parts.append(CountSinogram(poisson, poisson + gauss, m.i0 * f, s * np.sqrt(f)))
    return parts[0], parts[1]


def half_line_integrals(half_counts: np.ndarray, i0: np.ndarray) -> np.ndarray:
    """``-ln(max(2 N_k, 1) / I0)`` of one half's readings (half the incident photons), float32."""
    return (-np.log(np.maximum(2.0 * half_counts, 1.0) / i0)).astype(np.float32)


def full_line_integrals(m: CountSinogram) -> np.ndarray:
    """``-ln(max(N, 1) / I0)`` of all readings, float32."""
    return counts_to_line_integrals(m.counts, m.i0)


class CTThinningModality(CTModality):
    """CT whose halves are the thinned counts of every reading, each reconstructed with all views.

    Takes :class:`CountSinogram` measurements (module docstring); everything else (geometry, Hann FBP,
    units HU/1000) is :class:`~tomoconsensus.ct.modality.CTModality`'s.
    """

    def split(self, m: CountSinogram, rng: np.random.Generator | None = None):
        if m.split_seed is not None:
            rng = np.random.default_rng(m.split_seed)
        if rng is None:
            raise ValueError("the thinning split needs a random generator or the slice's split_seed")
        n1, n2 = thin_counts(m, rng)
        return ("all", half_line_integrals(n1, m.i0)), ("all", half_line_integrals(n2, m.i0))

    def reconstruct(self, half: tuple[str, np.ndarray]) -> np.ndarray:
        return self.to_units(self.fbp_all(half[1]))

    def estimate(self, m: CountSinogram) -> np.ndarray:
        return self.to_units(self.fbp_all(full_line_integrals(m)))

    def split_and_reconstruct(self, m: CountSinogram, rng: np.random.Generator | None = None) -> SplitImages:
        """x1, x2 and x_est of one slice, the three sinograms reconstructed as one batch."""
        (_, p1), (_, p2) = self.split(m, rng)
        mu = self.fbp_all(np.stack([p1, p2, full_line_integrals(m)]))
        return SplitImages(*(self.to_units(mu[k]) for k in range(3)))

    def attributes(self) -> dict[str, Any]:
        return {**super().attributes(), "split": SPLIT_DESCRIPTION, "split_kind": "thinning",
                "mean_input": MEAN_INPUT_X_EST}

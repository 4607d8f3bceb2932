"""Binomial thinning against the Poisson ground truth: halves independent, each Poisson(lambda/2)."""

import numpy as np
import pytest

from tomoconsensus.errors import InputError
from tomoconsensus.pet.io import as_counts
from tomoconsensus.pet.thinning import assign_events, binomial_thin


def test_sum_is_exact_and_halves_are_uncorrelated_over_a_million_bins():
    rng = np.random.default_rng(0)
    lam = rng.uniform(0.2, 50.0, 1_000_000)
    y = rng.poisson(lam)
    y1, y2 = binomial_thin(y, rng)
    assert np.array_equal(y1 + y2, y) and y1.min() >= 0 and y2.min() >= 0
    r1, r2 = y1 - lam / 2, y2 - lam / 2  # noise about the known half mean
    rho = float(np.corrcoef(r1, r2)[0, 1])
    assert abs(rho) < 0.01  # standard error 1e-3; measured |rho| ~ 1e-3
    # the same residuals of the full counts are strongly correlated with each half (sanity of the test)
    assert np.corrcoef(y - lam, r1)[0, 1] > 0.6


@pytest.mark.parametrize("lam", [0.4, 4.0, 40.0])
def test_each_half_is_poisson_with_half_the_mean(lam):
    n = 200_000
    rng = np.random.default_rng(1)
    y1, y2 = binomial_thin(rng.poisson(lam, n), rng)
    for half in (y1, y2):
        se = np.sqrt(lam / 2 / n)
        assert abs(half.mean() - lam / 2) < 4 * se
        # Poisson: variance = mean (relative SE of the ratio sqrt((2 + 2/lam)/n) <= 0.006)
        assert abs(half.var() / (lam / 2) - 1) < 0.03
        # and the zero class of Poisson(lam/2)
        p0 = np.exp(-lam / 2)
        assert abs((half == 0).mean() - p0) < 4 * np.sqrt(p0 * (1 - p0) / n) + 1e-12
    # independence beyond correlation: the joint zero probability factorises
    joint = ((y1 == 0) & (y2 == 0)).mean()
    assert abs(joint - np.exp(-lam)) < 4 * np.sqrt(np.exp(-lam) / n) + 1e-12


def test_odd_even_events_are_not_independent():
    """What docs/adding-a-modality.md used to suggest: alternate events share the total."""
    rng = np.random.default_rng(2)
    lam = np.full(200_000, 4.0)
    y = rng.poisson(lam)
    odd, even = (y + 1) // 2, y // 2  # events 1, 3, 5 ... and 2, 4, ... of each bin
    assert np.corrcoef(odd - 2, even - 2)[0, 1] > 0.8
    t1, t2 = binomial_thin(y, rng)
    assert abs(np.corrcoef(t1 - 2, t2 - 2)[0, 1]) < 0.01


def test_random_event_assignment_matches_binomial_thinning():
    rng = np.random.default_rng(3)
    n_bins, draws = 50, 4000
    lam = np.linspace(1, 20, n_bins)
    h1s = []
    for _ in range(draws):
        y = rng.poisson(lam)
        events = np.repeat(np.arange(n_bins), y)
        h1, h2 = assign_events(events, n_bins, rng)
        assert np.array_equal(h1 + h2, y)
        h1s.append(h1)
    h1s = np.array(h1s)
    assert np.all(np.abs(h1s.mean(0) - lam / 2) < 5 * np.sqrt(lam / 2 / draws))
    assert np.all(np.abs(h1s.var(0) / (lam / 2) - 1) < 0.12)  # var of a variance ratio: sqrt(2/4000) ~ 0.022


def test_only_raw_counts_can_be_thinned():
    assert as_counts(np.array([0.0, 3.0, 7.0]), "f.h5", "prompts").dtype == np.int64
    with pytest.raises(InputError, match="f.h5.*prompts.*integer.*fractional"):
        as_counts(np.array([1.0, 2.5]), "f.h5", "prompts")
    with pytest.raises(InputError, match="negative"):
        as_counts(np.array([1, -2]), "f.h5", "prompts")
    with pytest.raises(InputError, match="finite"):
        as_counts(np.array([1.0, np.nan]), "f.h5", "prompts")

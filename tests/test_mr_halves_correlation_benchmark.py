"""benchmarks/mr_halves_correlation.py: the halves' noise correlation against its analytic value, and the
centre-split variant's halves (disjoint, each weighted by its own 1 / P)."""

import numpy as np
import pytest

from tomoconsensus.mr.masks import center_lines_mask, random_split_mask, split_centre_lines

from tests.benchmark_module import benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("mr_halves_correlation.py", "mr_halves_correlation") as module:
        yield module


def test_shared_centre_noise_correlation_is_the_weight_overlap(bench):
    """128 lines, 4x, 16 centre lines: 16 outer lines, 8 per half, p = 16/112, outer weight 16 / (8 p) = 14;
    rho = 16 / (16 + 8 * 14^2) = 16 / 1584 = 0.0101 at every pixel, measured with arbitrary coil maps."""
    rng = np.random.default_rng(0)
    design = random_split_mask(128, rng, 4.0, 16)
    assert bench.analytic_correlation(design) == pytest.approx(16 / 1584, rel=1e-12)
    maps = rng.normal(size=(3, 128, 32)) + 1j * rng.normal(size=(3, 128, 32))
    n1, n2 = [], []
    for _ in range(200):
        e = rng.normal(size=(3, 128, 32)) + 1j * rng.normal(size=(3, 128, 32))
        a, b = bench._pairs(design, e * design.mask[None, :, None], maps)
        n1.append(a.ravel())
        n2.append(b.ravel())
    assert bench._correlation(n1, n2) == pytest.approx(16 / 1584, abs=0.004)  # ~1.6e6 samples: std 8e-4


def test_split_centre_variant_gives_disjoint_halves_weighted_by_their_own_probability(bench):
    rng = np.random.default_rng(1)
    design = random_split_mask(128, rng, 4.0, 16)
    centre = center_lines_mask(128, 16)
    split = split_centre_lines(design, centre, rng)
    assert not np.any(split.half1 & split.half2)
    np.testing.assert_array_equal(split.half1 | split.half2, design.mask)
    assert split.half1[centre].sum() == split.half2[centre].sum() == 8
    np.testing.assert_array_equal(split.weight_half1[centre], 2.0)  # P(centre line in a half) = 8 / 16
    np.testing.assert_array_equal(split.weight_half1[~centre], design.weight_half1[~centre])
    assert bench.analytic_correlation(split) == 0.0

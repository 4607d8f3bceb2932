import numpy as np
import pytest

from tomoconsensus.mr.masks import (
    center_lines_mask,
    outer_probabilities,
    random_split_mask,
    split_centre_lines,
    systematic_sample,
)


@pytest.mark.parametrize("n_lines,variable_density", [(320, 0.0), (368, 0.0), (368, 1.0), (256, 2.0)])
def test_exact_acceleration_centre_disjoint_union(n_lines, variable_density):
    rng = np.random.default_rng(0)
    for _ in range(20):
        d = random_split_mask(n_lines, rng, 4.0, 48, variable_density)
        assert abs(n_lines / d.mask.sum() - 4.0) / 4.0 < 0.01
        centre = center_lines_mask(n_lines, 48)
        assert centre.sum() == 48 and np.all(d.half1[centre]) and np.all(d.half2[centre])
        assert not np.any(d.half1 & d.half2 & ~centre)  # disjoint outside the centre
        assert np.array_equal(d.half1 | d.half2, d.mask)
        # each half gets half of the random outer lines (its outer part is 2R = 8x undersampled)
        n_outer = d.mask.sum() - 48
        assert {(d.half1 & ~centre).sum(), (d.half2 & ~centre).sum()} <= {n_outer // 2, n_outer - n_outer // 2}


def test_centre_is_around_k0():
    centre = center_lines_mask(11, 3)
    assert np.flatnonzero(centre).tolist() == [4, 5, 6]  # k = 0 at index 11 // 2 = 5


def test_probabilities_sum_to_the_line_budget_and_decay_with_variable_density():
    p = outer_probabilities(368, 4.0, 48, variable_density=1.0)
    assert p.sum() == pytest.approx(92)  # round(368 / 4)
    outer = ~center_lines_mask(368, 48)
    k = np.abs(np.arange(368) - 184)
    assert p[outer][np.argmin(k[outer])] > p[outer][np.argmax(k[outer])]
    assert np.all(p <= 1.0)


def test_systematic_sampling_has_the_requested_inclusion_probabilities():
    rng = np.random.default_rng(1)
    p = np.array([0.1, 0.5, 0.9, 0.2, 0.3, 0.0, 1.0])  # sums to 3
    counts = np.zeros_like(p)
    n = 20000
    for _ in range(n):
        chosen = systematic_sample(p, rng)
        assert chosen.sum() == 3
        counts += chosen
    np.testing.assert_allclose(counts / n, p, atol=0.012)  # 4 sigma of a binomial with n = 20000


def test_line_weights_are_inverse_inclusion_probabilities():
    rng = np.random.default_rng(2)
    n_lines, draws = 200, 6000
    in_half1 = np.zeros(n_lines)
    for _ in range(draws):
        d = random_split_mask(n_lines, rng, 4.0, 24, variable_density=1.0)
        in_half1 += d.half1
    empirical = in_half1 / draws
    outer = ~center_lines_mask(n_lines, 24)
    np.testing.assert_allclose(empirical[outer] * d.weight_half1[outer], 1.0, atol=0.2)
    assert np.all(d.weight_half1[~outer] == 1.0)


@pytest.mark.parametrize("center_lines", [16, 15])
def test_centre_split_halves_share_no_line_and_stay_unbiased(center_lines):
    """split_centre_lines: the outer lines and weights are the design's, the centre lines go to one half each,
    weighted by the inverse of P(line in half) (c / c1): E[weight * in_half] = 1 on every centre line, and
    for white noise the halves' noise correlation sum(w1 w2) / sqrt(sum w1^2 sum w2^2) is 0 (shared: 1 %)."""
    rng = np.random.default_rng(3)
    n_lines, draws = 128, 4000
    centre = center_lines_mask(n_lines, center_lines)
    c1 = center_lines // 2
    hits1, hits2 = np.zeros(n_lines), np.zeros(n_lines)
    for _ in range(draws):
        shared = random_split_mask(n_lines, rng, 4.0, center_lines)
        d = split_centre_lines(shared, centre, rng)
        assert not np.any(d.half1 & d.half2) and np.array_equal(d.half1 | d.half2, shared.mask)
        assert (d.half1 & centre).sum() == c1 and (d.half2 & centre).sum() == center_lines - c1
        assert np.array_equal(d.half1 & ~centre, shared.half1 & ~centre)
        assert np.array_equal(d.weight_half1[~centre], shared.weight_half1[~centre])
        hits1 += d.half1
        hits2 += d.half2
        w1, w2 = np.where(d.half1, d.weight_half1, 0.0), np.where(d.half2, d.weight_half2, 0.0)
        assert np.sum(w1 * w2) == 0.0
    assert np.all(d.weight_half1[centre] == center_lines / c1)
    assert np.all(d.weight_half2[centre] == center_lines / (center_lines - c1))
    # 4 binomial sigmas of the per-line frequency, times the weight
    np.testing.assert_allclose(hits1[centre] / draws * d.weight_half1[centre], 1.0, atol=4 * np.sqrt(1 / draws))
    np.testing.assert_allclose(hits2[centre] / draws * d.weight_half2[centre], 1.0, atol=4 * np.sqrt(1 / draws))
    w1s, w2s = np.where(shared.half1, shared.weight_half1, 0.0), np.where(shared.half2, shared.weight_half2, 0.0)
    assert np.sum(w1s * w2s) / np.sqrt(np.sum(w1s ** 2) * np.sum(w2s ** 2)) > 0.005  # shared centre: correlated

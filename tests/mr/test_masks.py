import numpy as np
import pytest

from tomoconsensus.mr.masks import center_lines_mask, outer_probabilities, random_split_mask, systematic_sample


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

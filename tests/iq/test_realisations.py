"""The iq phantom's realisations split like the prepared file: odd/even views or count thinning."""

from __future__ import annotations

import numpy as np
import pytest

from tomoconsensus.ct.iq_phantom import realisations, uniform_phantom


def test_thinning_and_view_split_share_x_est_and_the_thinned_halves_carry_twice_its_noise(demo_geometry):
    ph = uniform_phantom(demo_geometry)
    views = realisations(ph, demo_geometry, 0.25, 6, seed=4, split="views")
    thin = realisations(ph, demo_geometry, 0.25, 6, seed=4, split="thinning")
    # same readings for the same seed: x_est is the FBP of all counts either way
    np.testing.assert_allclose(thin.x_est, views.x_est, atol=2e-5)
    np.testing.assert_allclose(thin.truth, views.truth)
    roi = (slice(None), 0, slice(40, 88), slice(40, 88))
    noise_est = thin.x_est[roi] - thin.truth[0, 40:88, 40:88]
    half_diff = (thin.x1[roi] - thin.x2[roi]) / 2
    # each thinned half has half the counts: var(x1) = 2 var(x_est), so var((x1 - x2) / 2) = var(x_est)
    assert half_diff.var() / noise_est.var() == pytest.approx(1.0, rel=0.1)
    assert abs(np.corrcoef((thin.x1[roi] - thin.truth[0, 40:88, 40:88]).ravel(),
                           (thin.x2[roi] - thin.truth[0, 40:88, 40:88]).ravel())[0, 1]) < 0.05
    with pytest.raises(ValueError, match="split"):
        realisations(ph, demo_geometry, 0.25, 2, split="rays")

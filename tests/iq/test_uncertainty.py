"""The disagreement map and its noisy-data calibration on a shrinking, biased 'network' with known error."""

from __future__ import annotations

import numpy as np
import pytest

from tomoconsensus.iq import uncertainty as U


def test_calibration_from_noisy_data_recovers_the_true_error_scale_and_coverage():
    # F(x) = t + a (x - t) + b: half outputs h_i = t + a n_i + b; on the full data y = t + a (n1+n2)/2 + b.
    # Noise part of y: a^2 s^2 / 2 = var d; bias b. So k^2 = 1 + b^2 / (a^2 s^2) and y's error has std
    # sqrt(a^2 s^2/2 + b^2) < k sigma_raw (the noise-free part does not halve): coverage above 68 %.
    rng = np.random.default_rng(0)
    s, a, b = 0.02, 0.5, 0.006
    t = np.zeros((40, 1, 64, 64))
    t[..., 16:48, 16:48] = 0.05
    n1, n2 = rng.normal(0, s, (2,) + t.shape)
    x1, x2 = t + n1, t + n2
    h1, h2 = t + a * n1 + b, t + a * n2 + b
    y = t + a * (n1 + n2) / 2 + b
    sigma_raw = U.raw_sigma(h1, h2)
    assert np.sqrt((sigma_raw**2).mean()) == pytest.approx(a * s / np.sqrt(2), rel=0.03)
    mask = np.ones(t.shape, dtype=bool)
    k = U.calibration_scale(h1, x1, x2, sigma_raw, mask)  # y1 = Fbar(x1) = h1 for one network
    assert k == pytest.approx(np.sqrt(1 + b**2 / (a * s) ** 2), rel=0.03)
    check = U.check_calibration(y, t, k * sigma_raw, mask, 1000.0)
    true_ratio = (a**2 * s**2 / 2 + b**2) / (k**2 * a**2 * s**2 / 2)
    assert check["mse_ratio_actual_over_predicted"] == pytest.approx(true_ratio, rel=0.05)
    assert check["rms_error_hu"] == pytest.approx(1000 * np.sqrt(a**2 * s**2 / 2 + b**2), rel=0.03)


def test_an_exact_sigma_covers_68_and_95_percent_and_blocks_track_the_error():
    rng = np.random.default_rng(1)
    sigma = np.broadcast_to(np.linspace(0.5, 3.0, 64)[None, None, :], (20, 64, 64))  # varies across columns
    y = rng.normal(0, 1, sigma.shape) * sigma
    check = U.check_calibration(y, np.zeros_like(y), sigma, np.ones(y.shape, bool))
    assert check["coverage_1sigma"] == pytest.approx(0.683, abs=0.01)
    assert check["coverage_2sigma"] == pytest.approx(0.954, abs=0.01)
    assert check["block_correlation"] > 0.9


def test_fbp_halves_give_exactly_the_noise_of_their_mean():
    rng = np.random.default_rng(2)
    x1, x2 = rng.normal(0, 0.03, (2, 30, 1, 48, 48))
    sigma = U.raw_sigma(x1, x2)
    y = (x1 + x2) / 2
    check = U.check_calibration(y, np.zeros_like(y), sigma, np.ones(y.shape, bool))
    assert check["mse_ratio_actual_over_predicted"] == pytest.approx(1.0, rel=0.05)
    assert U.calibration_scale(x1, x1, x2, sigma, np.ones(y.shape, bool)) == pytest.approx(1.0, rel=0.05)

"""NPWE / NPW detectability against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from tomoconsensus.iq import detectability as det


def test_npw_dprime_of_a_disc_in_white_noise_is_the_matched_filter_snr():
    # TTF = 1, white NPS N0: d'^2 = int W^2 df / N0 = C^2 pi R^2 / N0 (Parseval)
    f = np.linspace(0, 6.0, 60001)
    n0, c, diameter = 25.0, 10.0, 5.0
    d = det.npwe_dprime(f, np.ones_like(f), np.full_like(f, n0), diameter, c, eye=False)
    assert d == pytest.approx(c * np.sqrt(np.pi * (diameter / 2) ** 2 / n0), rel=0.01)


def test_npwe_scales_with_contrast_and_inverse_noise_and_the_eye_filter_peaks_near_3_cycles_per_degree():
    f = np.linspace(0, 0.5 / 3.0, 200)
    ttf = np.exp(-((f / 0.1) ** 2))
    nps = 40.0 * f / f.max() + 1.0
    d1 = det.npwe_dprime(f, ttf, nps, 5.0, 10.0, fov_mm=384.0)
    assert det.npwe_dprime(f, ttf, nps, 5.0, 50.0, fov_mm=384.0) == pytest.approx(5 * d1, rel=1e-9)
    assert det.npwe_dprime(f, ttf, 4 * nps, 5.0, 10.0, fov_mm=384.0) == pytest.approx(d1 / 2, rel=1e-9)
    rho = np.linspace(0.01, 20, 20000)
    e = det.eye_filter(rho / (384.0 / 300.0 * 500.0 * np.pi / 180), 384.0)  # object f giving rho cycles/degree
    assert rho[np.argmax(e)] == pytest.approx((1.5 / (0.98 * 0.68)) ** (1 / 0.68), rel=1e-3)


def test_the_task_uses_the_ttf_of_the_nearest_insert_of_the_same_sign():
    ttfs = np.arange(5)[:, None] * np.ones((5, 3))
    contrasts = np.array([-100, 10, 50, 340, 990])
    assert det.ttf_for_contrast(10, contrasts, ttfs)[0] == 1
    assert det.ttf_for_contrast(60, contrasts, ttfs)[0] == 2
    assert det.ttf_for_contrast(-20, contrasts, ttfs)[0] == 0

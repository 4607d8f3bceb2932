"""NPWE / NPW detectability against closed forms and against the observer applied to discrete images."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import gamma

from tomoconsensus.iq import detectability as det


def test_npw_dprime_of_a_disc_in_white_noise_is_the_matched_filter_snr():
    # TTF = 1, white NPS N0: d'^2 = int W^2 df / N0 = C^2 pi R^2 / N0 (Parseval)
    f = np.linspace(0, 6.0, 60001)
    n0, c, diameter = 25.0, 10.0, 5.0
    d = det.npwe_dprime(f, np.ones_like(f), np.full_like(f, n0), diameter, c, eye=False)
    assert d == pytest.approx(c * np.sqrt(np.pi * (diameter / 2) ** 2 / n0), rel=0.01)


def test_the_burgess_eye_filter_peaks_at_4_cycles_per_degree_and_one_degree_spans_viewing_distance_pi_over_180():
    fov, display, viewing = 384.0, 300.0, 500.0
    # one period on the screen as wide as one degree of visual angle centred on the line of sight: 1 cycle/degree
    period_on_screen = 2 * viewing * np.tan(np.radians(0.5))
    f_object = 1.0 / period_on_screen * display / fov
    assert det.cycles_per_degree(f_object, fov, display, viewing) == pytest.approx(1.0, rel=1e-4)
    rho = np.linspace(0.01, 20, 200001)
    f = rho / det.cycles_per_degree(1.0, fov, display, viewing)
    assert rho[np.argmax(det.eye_filter(f, fov, display, viewing))] == pytest.approx(4.0, abs=1e-3)
    # the Eckstein form peaks at (1.5 / (0.98 * 0.68))^(1/0.68) = 3.30 cycles/degree
    assert rho[np.argmax(det.eye_filter(f, fov, display, viewing, form="eckstein"))] == pytest.approx(3.30, abs=0.01)
    with pytest.raises(ValueError, match="form"):
        det.eye_filter(f, fov, form="barten")


def test_npwe_of_a_gaussian_task_in_white_noise_matches_the_closed_form():
    # W = C exp(-s f^2), E = (a f)^n exp(-c a^2 f^2), NPS = N0, TTF = 1:
    # int W^2 E^2 df = C^2 a^2n pi G(n+1) / (2s + 2c a^2)^(n+1)
    # int W^2 E^4 N0 df = N0 C^2 a^4n pi G(2n+1) / (2s + 4c a^2)^(2n+1)
    fov, display, viewing = 300.0, 300.0, 500.0
    a = det.cycles_per_degree(1.0, fov, display, viewing)
    n, c = det.EYE_N, det.EYE_N / (2 * det.EYE_PEAK_CPD**2)
    contrast, s, n0 = 20.0, 3.0, 40.0
    f = np.linspace(0, 5.0, 200001)
    w = contrast * np.exp(-s * f**2)
    d = det.dprime_radial(f, w, np.ones_like(f), np.full_like(f, n0), det.eye_filter(f, fov, display, viewing))
    num = contrast**2 * a ** (2 * n) * np.pi * gamma(n + 1) / (2 * s + 2 * c * a**2) ** (n + 1)
    den = n0 * contrast**2 * a ** (4 * n) * np.pi * gamma(2 * n + 1) / (2 * s + 4 * c * a**2) ** (2 * n + 1)
    assert d == pytest.approx(num / np.sqrt(den), rel=1e-4)


def test_npwe_formula_equals_the_npwe_template_applied_to_pixel_images_in_white_noise():
    # A linear observer with template h in white pixel noise sigma: d' = sum(h s) / (sigma |h|), exactly.
    # s = band-limited disc (DFT = W / dx^2), h = the NPWE template (DFT = W E^2 / dx^2); NPS = sigma^2 dx^2.
    n_px, dx, sigma = 256, 0.5, 12.0
    fov, diameter, contrast = 300.0, 6.0, 15.0
    fx = np.fft.fftfreq(n_px, dx)
    rho = np.hypot(fx[:, None], fx[None, :])
    w = det.task_function(rho, diameter, contrast)
    e = det.eye_filter(rho, fov)
    s = np.fft.ifft2(w / dx**2).real
    h = np.fft.ifft2(w * e**2 / dx**2).real
    d_image = float((h * s).sum() / (sigma * np.sqrt((h**2).sum())))
    f = np.linspace(0, 0.5 / dx, 4001)
    d_formula = det.npwe_dprime(f, np.ones_like(f), np.full_like(f, sigma**2 * dx**2), diameter, contrast, fov)
    assert d_formula == pytest.approx(d_image, rel=0.01)
    # a Monte-Carlo observer on 2000 signal-absent images: the template response has the predicted spread
    # (sampling error ~1.6 %)
    rng = np.random.default_rng(0)
    t_absent = (rng.normal(0, sigma, (2000, 64, 64)) * h[:64, :64]).sum(axis=(1, 2))
    assert np.std(t_absent, ddof=1) == pytest.approx(sigma * np.sqrt((h[:64, :64] ** 2).sum()), rel=0.05)


def test_npwe_scales_with_contrast_and_inverse_noise():
    f = np.linspace(0, 0.5 / 3.0, 200)
    ttf = np.exp(-((f / 0.1) ** 2))
    nps = 40.0 * f / f.max() + 1.0
    d1 = det.npwe_dprime(f, ttf, nps, 5.0, 10.0, fov_mm=384.0)
    assert det.npwe_dprime(f, ttf, nps, 5.0, 50.0, fov_mm=384.0) == pytest.approx(5 * d1, rel=1e-9)
    assert det.npwe_dprime(f, ttf, 4 * nps, 5.0, 10.0, fov_mm=384.0) == pytest.approx(d1 / 2, rel=1e-9)


def test_the_task_uses_the_ttf_of_the_nearest_insert_of_the_same_sign():
    ttfs = np.arange(5)[:, None] * np.ones((5, 3))
    contrasts = np.array([-100, 10, 50, 340, 990])
    assert det.ttf_for_contrast(10, contrasts, ttfs)[0] == 1
    assert det.ttf_for_contrast(60, contrasts, ttfs)[0] == 2
    assert det.ttf_for_contrast(-20, contrasts, ttfs)[0] == 0

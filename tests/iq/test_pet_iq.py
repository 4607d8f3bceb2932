"""PET iq: the halves' NPS against a known noise level, contrast recovery against the analytic Gaussian-PSF case."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from tomoconsensus.pet.iq import gaussian_disc_recovery, halves_nps, recovery_markdown, recovery_table
from tomoconsensus.pet.metrics import disc_masks

NEMA_MM = (10.0, 13.0, 17.0, 22.0, 28.0, 37.0)


def test_halves_nps_recovers_a_known_white_noise_level_and_obeys_parseval():
    rng = np.random.default_rng(1)
    sigma, pixel = 0.3, 2.0
    yy, xx = np.mgrid[0:96, 0:96]
    activity = 1.0 + 0.01 * xx + 0.5 * (np.hypot(yy - 48, xx - 48) < 10)  # structure cancels in x1 - x2
    x1 = activity + rng.normal(0, sigma, (12, 96, 96))
    x2 = activity + rng.normal(0, sigma, (12, 96, 96))
    nps, full_scale = halves_nps(x1, x2, pixel, 64)
    assert nps.noise_hu == pytest.approx(sigma, rel=0.02)
    assert nps.noise_hu**2 / nps.pixel_std_hu**2 == pytest.approx(1.0, abs=1e-9)  # Parseval
    flat = nps.nps_radial[1:]  # white: sigma^2 dx^2 at every frequency (bin 0 is the removed mean)
    assert np.median(flat) == pytest.approx(sigma**2 * pixel**2, rel=0.05)
    assert np.all(np.abs(flat / (sigma**2 * pixel**2) - 1) < 0.35)
    assert full_scale == 0.5
    with pytest.raises(ValueError, match="leaves the image"):
        halves_nps(x1, x2, pixel, 64, centre_rc=(10, 48))


def test_contrast_recovery_per_sphere_size_matches_the_gaussian_psf_closed_form():
    pixel, fwhm, ratio = 0.5, 6.0, 4.0
    sigma_mm = fwhm / (2 * np.sqrt(2 * np.log(2)))
    n, sub = 256, 4
    c = (n * sub - 1) / 2
    angles = 2 * np.pi * np.arange(6) / 6
    centres = [(n / 2 - 0.5 - 42 / pixel * np.sin(a), n / 2 - 0.5 + 42 / pixel * np.cos(a)) for a in angles]
    yy, xx = np.mgrid[0:n * sub, 0:n * sub]
    fine = np.zeros((n * sub, n * sub))
    for (r, col), d in zip(centres, NEMA_MM, strict=True):
        fine += np.hypot(yy - (c - (n / 2 - 0.5 - r) * sub), xx - (c + (col - n / 2 + 0.5) * sub)) < d / 2 / pixel * sub
    discs = fine.reshape(n, sub, n, sub).mean(axis=(1, 3))  # area fraction per pixel
    image = 1.0 + (ratio - 1) * gaussian_filter(discs, sigma_mm / pixel, mode="constant")
    corners = [(12 / pixel, 12 / pixel), (12 / pixel, n - 12 / pixel), (n - 12 / pixel, 12 / pixel)]
    backgrounds = disc_masks(image.shape, corners + [(n - 12 / pixel, n - 12 / pixel)], 6 / pixel)
    rows = recovery_table(image, centres, NEMA_MM, [ratio] * 6, backgrounds, pixel)
    assert [r["diameter_mm"] for r in rows] == sorted(NEMA_MM)
    for row in rows:
        expected = gaussian_disc_recovery(row["diameter_mm"] / 2, sigma_mm)
        assert row["cr"] == pytest.approx(expected, rel=0.005), row  # measured: within 0.3 %
    crs = [r["cr"] for r in rows]
    assert crs[0] < 0.65 and crs[-1] > 0.85 and np.all(np.diff(crs) > 0)  # partial volume: small spheres lose contrast
    assert rows[0]["bv"] == pytest.approx(0.0, abs=1e-6)  # noiseless background
    assert "CR 10 mm" in recovery_markdown({"OSEM": rows})


def test_gaussian_disc_recovery_limits():
    assert gaussian_disc_recovery(50.0, 1.0) == pytest.approx(1.0 - 1.0 / (np.sqrt(2 * np.pi) * 50) * 2, rel=0.01)
    assert gaussian_disc_recovery(0.5, 5.0) == pytest.approx((0.5 / 5.0) ** 2 / 2, rel=0.02)

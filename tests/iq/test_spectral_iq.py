"""Spectral iq per bin: known noise levels and NPS shapes per bin, and per-bin TTFs of known Gaussian blurs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from tomoconsensus.iq.measure import Insert
from tomoconsensus.spectral.iq import per_bin_markdown, per_bin_nps, per_bin_ttf


def test_per_bin_nps_recovers_each_bins_noise_level_and_shape():
    rng = np.random.default_rng(2)
    k, n, pixel = 96, 64, 2.0
    sigmas = (10.0, 15.0, 25.0)
    white = rng.normal(0, 1, (k, 3, n, n)) * np.array(sigmas)[None, :, None, None]
    blur = 1.5  # bin 3: correlated noise, NPS = sigma^2 dx^2 exp(-4 pi^2 s^2 f^2), variance sigma^2 / (4 pi s^2)
    images = white.copy()
    images[:, 2] = gaussian_filter(white[:, 2], (0, blur, blur), mode="wrap")
    res = per_bin_nps(images + 40.0, pixel, 48)
    for b in (0, 1):
        assert res[b].noise_hu == pytest.approx(sigmas[b], rel=0.03)
        assert np.median(res[b].nps_radial[1:]) == pytest.approx(sigmas[b] ** 2 * pixel**2, rel=0.05)
    assert res[2].noise_hu == pytest.approx(sigmas[2] / np.sqrt(4 * np.pi * blur**2), rel=0.05)
    for r in res:
        assert r.noise_hu**2 / r.pixel_std_hu**2 == pytest.approx(1.0, rel=0.02)  # Parseval (0.987 for the blurred bin)
    f = res[2].f_radial
    model = sigmas[2] ** 2 * pixel**2 * np.exp(-4 * np.pi**2 * (blur * pixel) ** 2 * f**2)
    band = (model > 0.1 * model.max()) & (np.arange(len(f)) >= 2)  # bins 0, 1: the removed ROI mean leaks in
    assert band.sum() >= 5
    assert np.all(np.abs(res[2].nps_radial[band] / model[band] - 1) < 0.1)  # measured <= 5 %
    with pytest.raises(ValueError, match="K >= 2"):
        per_bin_nps(images[:1], pixel, 48)


def test_per_bin_ttf_is_each_bins_gaussian_mtf():
    n, d, s, radius = 96, 2.0, 8, 20.0
    c = (np.arange(n * s) - (n * s - 1) / 2) * d / s
    x, y = np.meshgrid(c, -c)
    disc = (x**2 + y**2 < radius**2).astype(float)
    shift = (s // 2 - (s - 1) / 2) / s
    centre = ((n - 1) / 2 - shift, (n - 1) / 2 - shift)
    sigmas_mm, contrasts = (2.0, 3.0), (300.0, 120.0)  # the insert's contrast falls with energy
    means = np.stack([gaussian_filter(con * disc, sg / (d / s), mode="constant")[s // 2::s, s // 2::s]
                      for sg, con in zip(sigmas_mm, contrasts, strict=True)])
    inserts = [[Insert(centre, radius / d, con)] for con in contrasts]
    ttfs = per_bin_ttf(means, inserts, d)
    for (t,), sg, con in zip(ttfs, sigmas_mm, contrasts, strict=True):
        assert t.f50 == pytest.approx(np.sqrt(np.log(2) / (2 * np.pi**2)) / sg, rel=0.05)
        assert t.measured_contrast_hu == pytest.approx(con, rel=0.02)
    nps = per_bin_nps(np.random.default_rng(0).normal(0, 1, (4, 2, 32, 32)), d, 16)
    assert "| bin 1 |" in per_bin_markdown(["bin 1", "bin 2"], nps, ttfs)
    with pytest.raises(ValueError, match="insert lists"):
        per_bin_ttf(means, inserts[:1], d)

"""NPS of the repo's FBP of white sinogram noise against its analytic noise power (ground truth).

With white noise of variance sigma^2 per channel, the Hann FBP near the isocentre has the NPS of
:func:`tomoconsensus.iq.nps.fbp_white_noise_nps` (ramp x Hann squared x linear interpolation, / views),
sampled on the pixel grid (aliases) and seen through the ROI (Fejer kernel). Measured on a 64^2 copy
of the demo geometry, central 32^2 ROI, 96 realisations (about 1 s).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from tomoconsensus.iq import nps as N
from tomoconsensus.tomo.fbp import FBP, ramp_filter

SIGMA = 0.01  # line-integral noise per channel
ROI = 32


@pytest.fixture(scope="module")
def fbp_noise(demo_geometry):
    geom = dataclasses.replace(demo_geometry, image_size=64)
    op = FBP(geom)
    rng = np.random.default_rng(1)
    images = np.concatenate([op(rng.normal(0, SIGMA, (16, geom.n_views, geom.n_detectors))).numpy()
                             for _ in range(6)])
    du = geom.detector_pitch_mm * geom.source_to_origin_mm / geom.source_to_detector_mm
    return geom, N.central_roi(images, ROI), du


def test_nps_integral_equals_the_pixel_variance(fbp_noise):
    geom, roi, du = fbp_noise
    variance = roi.var(axis=0, ddof=1).mean()  # per-pixel variance over the realisations (no spectrum involved)
    res = N.measure_nps(N.ensemble_noise(roi), geom.pixel_size_mm, variance)
    assert res.noise_hu**2 == pytest.approx(variance, rel=0.05)
    # ... and the analytic NPS integrates to the same variance (so the model's absolute level is right too)
    model, _ = N.expected_periodogram(lambda r: N.fbp_white_noise_nps(r, SIGMA, geom.n_views, du), ROI,
                                      geom.pixel_size_mm)
    assert N.integral(model, geom.pixel_size_mm) == pytest.approx(variance, rel=0.05)


def test_radial_nps_matches_ramp_times_hann_within_10_percent(fbp_noise):
    geom, roi, du = fbp_noise
    res = N.measure_nps(N.ensemble_noise(roi), geom.pixel_size_mm, 1.0)
    model_2d, _ = N.expected_periodogram(lambda r: N.fbp_white_noise_nps(r, SIGMA, geom.n_views, du), ROI,
                                         geom.pixel_size_mm)
    f_r, model = N.radial_average(model_2d, res.f_axis)
    band = (model > 0.1 * model.max()) & (f_r > 0)  # f = 0 is removed by the ROI mean
    assert band.sum() >= 10
    ratio = res.nps_radial[band] / model[band]
    assert np.abs(ratio - 1).max() < 0.10, ratio
    # the shape is a ramp x Hann: the NPS peaks well inside the band, not at either end
    assert 0.25 < res.peak_frequency / (0.5 / geom.pixel_size_mm) < 0.8


def test_the_analytic_filter_is_the_repos_ramp_times_hann():
    du = 2.8
    response = ramp_filter(184, du, "hann").numpy()
    n_fft = 2 * (len(response) - 1)
    nu = np.arange(len(response)) / n_fft
    closed_form = nu / du * 0.5 * (1 + np.cos(2 * math.pi * nu))
    inside = (nu > 0.02) & (nu < 0.45)
    assert np.allclose(response[inside], closed_form[inside], rtol=0.01)
    assert torch.is_tensor(ramp_filter(8, 1.0))


def test_difference_noise_has_the_variance_of_one_image():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 3.0, (2, 200, 32, 32))
    assert N.difference_noise(a, b).var() == pytest.approx(9.0, rel=0.02)
    assert N.ensemble_noise(a).var() == pytest.approx(9.0, rel=0.02)

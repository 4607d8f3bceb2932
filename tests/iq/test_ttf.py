"""TTF from circular inserts: against an analytic Gaussian blur, and for FBP against a noiseless edge and wire."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.special import j1

from tomoconsensus.ct.iq import insert_centres_px
from tomoconsensus.ct.iq_phantom import Disc, TaskPhantom, insert_phantom, line_integrals, noisy_sinograms
from tomoconsensus.ct.noise import mu_to_hu
from tomoconsensus.iq import ttf as T
from tomoconsensus.tomo.fbp import FBP


@pytest.mark.parametrize("sigma_mm", [2.0, 3.0, 4.5])
def test_ttf_of_a_gaussian_blurred_disc_is_the_gaussians_mtf(sigma_mm):
    n, d, s, radius = 128, 3.0, 8, 25.0
    centre = (95 * np.cos(2.83), 95 * np.sin(2.83))
    c = (np.arange(n * s) - (n * s - 1) / 2) * d / s
    x, y = np.meshgrid(c, -c)
    fine = 100.0 * ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 < radius**2)
    image = gaussian_filter(fine, sigma_mm / (d / s), mode="constant")[s // 2::s, s // 2::s]
    shift = (s // 2 - (s - 1) / 2) / s  # the point samples sit this far (pixels) from the pixel centres
    rc = ((n - 1) / 2 - centre[1] / d - shift, (n - 1) / 2 + centre[0] / d - shift)
    res = T.measure_ttf(image, rc, radius / d, d, 100.0)
    f50_true = np.sqrt(np.log(2) / (2 * np.pi**2)) / sigma_mm  # MTF = exp(-2 pi^2 sigma^2 f^2)
    assert res.f50 == pytest.approx(f50_true, rel=0.05)
    assert res.measured_contrast_hu == pytest.approx(100.0, abs=2.0)


def wire_mtf_f50(geom, x_mm, y_mm):
    """f50 of the FBP's MTF at (x, y): a 0.25 mm wire reconstructed on a 0.25 mm grid around it."""
    fine = dataclasses.replace(geom, image_size=256, pixel_size_mm=0.25)
    op = FBP(fine)
    op.x += x_mm
    op.y += y_mm
    psf = op(line_integrals(TaskPhantom((Disc(x_mm, y_mm, 0.25, 1e5),), 0.0), fine, n_sub=64)).numpy()
    f, mtf = T.mtf_from_psf(psf, 0.25)
    arg = 2 * np.pi * 0.25 * f
    mtf = mtf / np.where(arg > 0, 2 * j1(arg) / np.maximum(arg, 1e-12), 1.0)  # the wire's own size
    return T.crossing(f, mtf, 0.5)


def test_fbp_ttf_is_the_same_for_every_contrast_and_matches_the_noiseless_edge_and_wire(demo_geometry):
    # 64x the demo's photons so that 16 realisations resolve the +10 HU edge; the FBP is linear in the data
    geom = dataclasses.replace(demo_geometry, protocol=dataclasses.replace(demo_geometry.protocol,
                                                                           incident_photons=9.6e6))
    phantom = insert_phantom(geom)
    mu_w = geom.protocol.mu_water_per_mm
    op = FBP(geom)
    clean = line_integrals(phantom, geom)
    noiseless = mu_to_hu(op(clean).numpy(), mu_w)
    mean = mu_to_hu(op(noisy_sinograms(clean, geom, 1.0, 16, seed=3)).numpy(), mu_w).mean(axis=0)
    d = geom.pixel_size_mm
    f50_noisy, f50_edge = [], []
    for rc, disc in zip(insert_centres_px(phantom, geom), phantom.inserts, strict=True):
        f50_noisy.append(T.measure_ttf(mean, rc, disc.radius_mm / d, d, disc.hu_added).f50)
        f50_edge.append(T.measure_ttf(noiseless, rc, disc.radius_mm / d, d, disc.hu_added).f50)
    f50_noisy, f50_edge = np.array(f50_noisy), np.array(f50_edge)
    assert np.abs(f50_noisy / f50_edge - 1).max() < 0.05, (f50_noisy, f50_edge)
    assert np.abs(f50_noisy / f50_noisy.mean() - 1).max() < 0.05  # linear: no contrast dependence
    wire = np.mean([wire_mtf_f50(geom, disc.x_mm, disc.y_mm) for disc in phantom.inserts[:2]])
    assert f50_edge[:2].mean() == pytest.approx(wire, rel=0.05)

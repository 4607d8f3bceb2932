"""The phantom's exact line integrals against ASTRA's strip projection of its supersampled raster."""

from __future__ import annotations

import numpy as np
import pytest

from tomoconsensus.ct.iq_phantom import image_hu, insert_phantom, line_integrals, uniform_phantom
from tomoconsensus.ct.noise import hu_to_mu
from tomoconsensus.tomo.projector import forward_project


def test_exact_line_integrals_agree_with_astra_on_the_raster(demo_geometry):
    phantom = insert_phantom(demo_geometry)
    exact = line_integrals(phantom, demo_geometry)
    mu_w = demo_geometry.protocol.mu_water_per_mm
    astra = forward_project(hu_to_mu(image_hu(phantom, demo_geometry), mu_w), demo_geometry, kind="strip")
    assert np.corrcoef(exact.ravel(), astra.ravel())[0, 1] > 0.9999
    # the uniform disc's central chords: 300 mm of water (the rays nearest the centre pass 1.4 mm off it)
    assert line_integrals(uniform_phantom(demo_geometry), demo_geometry).max() == pytest.approx(300 * mu_w, rel=1e-3)
    inside = exact > 0.5
    assert np.median(np.abs(exact - astra)[inside]) < 0.01 * np.median(exact[inside])

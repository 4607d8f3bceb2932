import dataclasses

import numpy as np
import pytest

from tomoconsensus.ct.noise import (
    bowtie_transmission,
    counts_to_line_integrals,
    hu_to_mu,
    incident_photons,
    mu_to_hu,
    simulate_counts,
    simulate_low_dose,
)
from tomoconsensus.ct.protocol import CTDoseProtocol
from tomoconsensus.errors import InputError


def test_hu_mu_round_trip_and_air_clip():
    hu = np.array([-3024.0, -1000.0, 0.0, 1000.0])
    mu = hu_to_mu(hu, 0.02)
    np.testing.assert_allclose(mu, [0.0, 0.0, 0.02, 0.04])
    np.testing.assert_allclose(mu_to_hu(mu, 0.02), [-1000, -1000, 0, 1000], atol=1e-3)


def test_counts_have_poisson_plus_electronic_variance():
    rng = np.random.default_rng(0)
    protocol = CTDoseProtocol(incident_photons=1000.0, electronic_noise_std=5.0)
    i0 = np.full(4, 1000.0)
    counts = simulate_counts(np.full((20000, 4), 1.0), i0, protocol, rng)
    expected_mean = 1000 * np.exp(-1.0)
    assert counts.mean() == pytest.approx(expected_mean, rel=0.01)
    assert counts.var() == pytest.approx(expected_mean + 25.0, rel=0.03)


def test_log_transform_floors_at_one_photon():
    out = counts_to_line_integrals(np.array([-3.0, 0.0, 100.0]), np.array(100.0))
    np.testing.assert_allclose(out, [np.log(100), np.log(100), 0.0], rtol=1e-6)


def test_dose_fraction_is_validated(demo_geometry):
    with pytest.raises(InputError, match="dose_fraction"):
        simulate_low_dose(np.zeros(demo_geometry.sinogram_shape), demo_geometry, 1.5, np.random.default_rng())
    assert incident_photons(demo_geometry, 0.25)[0] == pytest.approx(0.25 * demo_geometry.protocol.incident_photons)


def test_bowtie_attenuates_the_fan_edges_only(demo_geometry):
    geom = dataclasses.replace(demo_geometry, protocol=dataclasses.replace(demo_geometry.protocol,
                                                                           bowtie_water_equiv_mm=30.0))
    t = bowtie_transmission(geom)
    assert t.max() == pytest.approx(1.0, abs=1e-3)
    assert t[0] == pytest.approx(np.exp(-geom.protocol.mu_water_per_mm * 30.0), rel=0.02)
    assert np.all(bowtie_transmission(demo_geometry) == 1.0)

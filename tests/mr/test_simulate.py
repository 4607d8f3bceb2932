"""Simulated multi-coil k-space from the shipped real anatomy: ground truth and the SENSE vs ZF claim."""

import numpy as np
import pytest

from tomoconsensus.demo import DemoProtocol, mr_demo_volumes, patient_split
from tomoconsensus.errors import InputError
from tomoconsensus.metrics import mr_metrics
from tomoconsensus.mr.modality import MRModality
from tomoconsensus.mr.recon import zero_filled_combination
from tomoconsensus.mr.simulate import (
    birdcage_sensitivities,
    simulate_kspace,
    simulated_volumes,
    smooth_phase,
    t1_like_magnitude,
)
from tomoconsensus.mr.sources import undersampled_slices


def test_t1_like_contrast_orders_tissues_as_t1_weighting():
    air, lung, fat, fluid, muscle, liver = t1_like_magnitude(np.array([-1000, -800, -100, 0, 40, 70]))
    assert air == 0.0 and fat == 1.0
    assert lung < fluid < muscle < liver < fat


def test_noiseless_kspace_combined_with_true_maps_is_the_object():
    rng = np.random.default_rng(0)
    maps = birdcage_sensitivities(8, (64, 64))
    np.testing.assert_allclose(np.sum(np.abs(maps) ** 2, axis=0), 1.0, rtol=1e-5)
    image = rng.random((64, 64)) * np.exp(1j * smooth_phase((64, 64), rng))
    combined = zero_filled_combination(simulate_kspace(image, maps, 0.0, rng), maps, np.ones(64))
    assert np.abs(combined - image).max() / np.abs(image).max() < 1e-5


def test_kspace_noise_has_the_stated_std_in_the_combined_image():
    rng = np.random.default_rng(1)
    maps = birdcage_sensitivities(8, (64, 64))
    noise = zero_filled_combination(simulate_kspace(np.zeros((64, 64)), maps, 0.05, rng), maps, np.ones(64))
    assert np.std(noise.real) * np.sqrt(2) == pytest.approx(0.05, rel=0.05)
    assert np.std(noise.imag) * np.sqrt(2) == pytest.approx(0.05, rel=0.05)


@pytest.fixture(scope="module")
def test_patient_slices():
    """The MR demo's 4 test slices: 8-coil 128^2 k-space from the embedded anatomy, 4x, 16 centre lines."""
    protocol = DemoProtocol()
    name, stack, max_slices, offset = patient_split(protocol)[2]
    volumes = mr_demo_volumes(name, stack, max_slices, offset, protocol.mr)
    return list(undersampled_slices(volumes, protocol.mr.acceleration, protocol.mr.center_lines, seed=offset))


def test_sense_beats_zero_filling_on_shipped_anatomy(test_patient_slices):
    # Measured: SENSE / zero-filling RMSE = 0.66-0.78 on these 4 slices (8 birdcage coils, 4x).
    modality = MRModality(center_lines=16)
    for s in test_patient_slices:
        sense_rmse = mr_metrics(modality.estimate(s.measurement), s.reference)["rmse_1e-3"]
        zf_rmse = mr_metrics(modality.zero_filled(s.measurement), s.reference)["rmse_1e-3"]
        assert sense_rmse < 0.85 * zf_rmse, (s.slice_id, sense_rmse, zf_rmse)


def test_halves_errors_are_nearly_uncorrelated_on_shipped_anatomy(test_patient_slices):
    # Measured: rho between -0.15 and -0.06 (the halves share no outer line, hence negative).
    modality = MRModality(center_lines=16)
    for s in test_patient_slices:
        h1, h2 = modality.split(s.measurement)
        e1 = modality.reconstruct(h1) - s.reference
        e2 = modality.reconstruct(h2) - s.reference
        assert abs(np.corrcoef(e1.ravel(), e2.ravel())[0, 1]) < 0.15


def test_too_few_centre_lines_for_espirit_is_a_named_error():
    volumes = simulated_volumes([np.ones((64, 64))], ["tiny"], 4, 0.01, np.random.default_rng(2))
    with pytest.raises(InputError, match="center_lines.*ESPIRiT"):
        list(undersampled_slices(volumes, 4.0, 8, seed=0))

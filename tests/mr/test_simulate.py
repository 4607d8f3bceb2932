"""Simulated multi-coil k-space from the shipped real anatomy: ground truth and the SENSE vs ZF claim."""

import dataclasses

import numpy as np
import pytest

from tomoconsensus.errors import InputError
from tomoconsensus.mr.demo import MRDemoData, mr_demo_volumes, mr_noise_std, mr_split
from tomoconsensus.mr.modality import MRModality
from tomoconsensus.mr.presentation import mr_metrics
from tomoconsensus.mr.raw import assemble_lines, remove_readout_oversampling, whitening_matrix
from tomoconsensus.mr.recon import coil_compression_matrix, coil_images, compress_coils, zero_filled_combination
from tomoconsensus.mr.simulate import (
    ScannerSimulation,
    birdcage_sensitivities,
    correlated_noise,
    noise_std_for_snr,
    oversampled_kspace,
    ring_noise_correlation,
    scanner_lines,
    scanner_volumes,
    simulate_kspace,
    simulated_volumes,
    smooth_phase,
    t1_like_magnitude,
)
from tomoconsensus.mr.sources import check_calibration, undersampled_slices
from tomoconsensus.study.runner import demo_protocol


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
def demo_test_slices():
    """The MR demo's 4 test slices: 15-coil scanner simulation of 128^2 k-space from the embedded anatomy,
    compressed to 8 virtual coils, 4x, 16 centre lines."""
    mr = demo_protocol("mr").data
    name, stack, max_slices, offset = mr_split(mr)[2]
    volumes = mr_demo_volumes(name, stack, max_slices, offset, mr)
    return list(undersampled_slices(volumes, mr.acceleration, mr.center_lines, seed=offset,
                                    virtual_coils=mr.virtual_coils or None))


def test_sense_beats_zero_filling_on_shipped_anatomy(demo_test_slices):
    # Measured (scanner simulation, 15 -> 8 virtual coils, 4x): SENSE / zero-filling RMSE = 74.1 / 95.8 (mean).
    modality = MRModality(center_lines=16)
    for s in demo_test_slices:
        sense_rmse = mr_metrics(modality.estimate(s.measurement), s.reference)["rmse_1e-3"]
        zf_rmse = mr_metrics(modality.zero_filled(s.measurement), s.reference)["rmse_1e-3"]
        assert sense_rmse < 0.85 * zf_rmse, (s.slice_id, sense_rmse, zf_rmse)


def test_halves_errors_are_nearly_uncorrelated_on_shipped_anatomy(demo_test_slices):
    # Measured: rho between -0.153 and -0.068 (scanner simulation, 15 -> 8 virtual coils; -0.146 to -0.064 with
    # the simple 8-coil one): the halves share no outer line, hence negative.
    modality = MRModality(center_lines=16)
    for s in demo_test_slices:
        h1, h2 = modality.split(s.measurement)
        e1 = modality.reconstruct(h1) - s.reference
        e2 = modality.reconstruct(h2) - s.reference
        assert abs(np.corrcoef(e1.ravel(), e2.ravel())[0, 1]) < 0.2


def test_too_few_centre_lines_for_espirit_is_a_named_error():
    volumes = simulated_volumes([np.ones((64, 64))], ["tiny"], 4, 0.01, np.random.default_rng(2))
    with pytest.raises(InputError, match="center_lines.*ESPIRiT"):
        list(undersampled_slices(volumes, 4.0, 8, seed=0))


def _blob(n: int = 32) -> np.ndarray:
    y, x = np.mgrid[:n, :n] - n / 2
    return np.where((y / (0.4 * n)) ** 2 + (x / (0.3 * n)) ** 2 < 1, 0.5, 0.0) + np.where(x**2 + y**2 < (n / 8) ** 2,
                                                                                        0.5, 0.0)


def test_ring_correlation_decays_with_ring_distance_and_bad_values_are_named():
    r = ring_noise_correlation(6, 0.3)
    assert r[0, 1] == pytest.approx(0.3) and r[0, 5] == pytest.approx(0.3) and r[0, 3] == pytest.approx(0.027)
    with pytest.raises(InputError, match="coil noise correlation"):
        ring_noise_correlation(6, 1.0)


def test_oversampled_readout_is_removed_exactly():
    rng = np.random.default_rng(3)
    maps = birdcage_sensitivities(4, (32, 32))
    image = rng.random((32, 32)) * np.exp(1j * smooth_phase((32, 32), rng))
    exact = simulate_kspace(image, maps, 0.0, rng)
    back = remove_readout_oversampling(oversampled_kspace(image, maps, 2), 32)
    assert np.abs(back - exact).max() / np.abs(exact).max() < 1e-6


def test_scanner_lines_whiten_to_identity_and_keep_the_exact_signal():
    rng = np.random.default_rng(4)
    sim = ScannerSimulation(coils=6, noise_readouts=64)
    maps, corr = birdcage_sensitivities(6, (32, 32)), ring_noise_correlation(6, 0.3)
    image = _blob() * np.exp(1j * smooth_phase((32, 32), rng))
    raw = scanner_lines([image] * 8, maps, 0.05, corr, sim, rng)
    kspace, acquired, notes = assemble_lines(raw)
    assert acquired.all() and notes["prewhitened"] and notes["readout_oversampling"] == 2
    w = whitening_matrix(raw.noise)
    noise = kspace - np.einsum("ij,jyx->iyx", w, simulate_kspace(image, maps, 0.0, rng))[None]  # exact signal out
    noise = noise.transpose(1, 0, 2, 3).reshape(6, -1)
    cov = noise @ noise.conj().T / noise.shape[1] * 2  # unit variance per oversampled sample: 1/2 after removal
    np.testing.assert_allclose(cov, np.eye(6), atol=0.06)  # sampling error of 8192 samples (and of the noise scan)
    assert abs(noise.mean()) < 0.02


def test_snr_sets_the_noise_std_that_nema_measures_on_the_rss_image():
    rng = np.random.default_rng(5)
    maps, corr = birdcage_sensitivities(8, (64, 64)), ring_noise_correlation(8, 0.3)
    obj = _blob(64)
    std = noise_std_for_snr(30.0, [obj], maps, corr)

    def rss():
        k = simulate_kspace(obj, maps, 0.0, rng) + correlated_noise(maps.shape, std, corr, rng)
        return np.sqrt(np.sum(np.abs(coil_images(k)) ** 2, axis=0))

    a, b = rss(), rss()
    roi = obj >= 0.25
    snr = a[roi].mean() / (np.std((a - b)[roi]) / np.sqrt(2))  # NEMA MS 1: difference of two acquisitions
    assert snr == pytest.approx(30.0, rel=0.05)


def test_scanner_volumes_group_by_volume_and_record_the_readers_notes():
    sim = ScannerSimulation(coils=4, noise_std=0.01, noise_readouts=16)
    volumes = scanner_volumes([_blob()] * 3, ["a", "b", "a"], sim, np.random.default_rng(6))
    assert [v.volume_id for v in volumes] == ["a", "b"] and volumes[0].kspace.shape == (2, 4, 32, 32)
    assert volumes[0].fully_sampled and volumes[0].notes["format"] == "simulated scanner"
    assert sim.attributes(0.01)["snr"] == 30.0


def test_coil_compression_is_exact_at_full_rank_and_keeps_white_noise_white():
    rng = np.random.default_rng(7)
    maps = birdcage_sensitivities(6, (32, 32))
    mix = rng.normal(size=(6, 3)) + 1j * rng.normal(size=(6, 3))  # 6 coils spanning a rank-3 space
    kspace = np.einsum("cr,ryx->cyx", mix, simulate_kspace(_blob(), maps[:3], 0.0, rng))
    a = coil_compression_matrix(kspace[:, 12:20], 3)
    np.testing.assert_allclose(a @ a.conj().T, np.eye(3), atol=1e-10)
    restored = np.einsum("vc,vyx->cyx", a.conj(), compress_coils(kspace, a))
    assert np.abs(restored - kspace).max() / np.abs(kspace).max() < 1e-5
    white = correlated_noise((6, 20000), 1.0, np.eye(6), rng)
    cw = compress_coils(white, a)
    np.testing.assert_allclose(cw @ cw.conj().T / 20000, np.eye(3), atol=0.05)
    with pytest.raises(InputError, match="virtual coils"):
        coil_compression_matrix(kspace, 7)


def test_calibration_width_defaults_to_the_centre_and_is_checked():
    assert check_calibration(16) == 16 and check_calibration(16, 12) == 12
    with pytest.raises(InputError, match="--calib-width.*at most the 16"):
        check_calibration(16, 20)
    with pytest.raises(InputError, match="--calib-width.*at least 6"):
        check_calibration(16, 4)


def test_demo_keeps_the_simple_simulation_as_an_option():
    mr: MRDemoData = demo_protocol("mr").data
    assert mr_noise_std(dataclasses.replace(mr, simulation="simple")) == 0.02
    assert mr_noise_std(mr) == pytest.approx(0.0233, abs=5e-4)  # SNR 30 on the test anatomy
    with pytest.raises(InputError, match="simulation"):
        mr_noise_std(dataclasses.replace(mr, simulation="bogus"))

"""The count-domain (thinning) split of CT readings, against the measurement model's ground truth."""

import numpy as np
import pytest

from tomoconsensus.ct.countsplit import (
    CTThinningModality,
    full_line_integrals,
    half_line_integrals,
    recorrupt_counts,
    simulate_count_sinogram,
    thin_counts,
    thin_fraction,
)
from tomoconsensus.ct.io import ImageStack
from tomoconsensus.ct.noise import incident_photons, simulate_low_dose
from tomoconsensus.ct.pipeline import ct_modality, simulated_source, write_ct
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.tomo.projector import AstraProjector

from tests.conftest import disk

LAMBDA, SIGMA_E, N = 40.0, 6.0, 400_000


def _readings(rng, electronic=SIGMA_E):
    expected = np.full((N // 400, 400), LAMBDA)
    return simulate_count_sinogram(np.zeros_like(expected), expected, electronic, rng)


def test_halves_sum_to_the_readings_and_are_independent_half_dose_readings():
    """N1 + N2 = N exactly; each half has mean lambda/2 and variance lambda/2 + sigma_e^2/2 (a half-dose
    reading with sigma_e/sqrt 2); their correlation is 0 within its standard error 1/sqrt(N)."""
    rng = np.random.default_rng(3)
    m = _readings(rng)
    n1, n2 = thin_counts(m, rng)
    np.testing.assert_allclose(n1 + n2, m.counts, rtol=0, atol=1e-9)
    se = 1 / np.sqrt(N)
    for half in (n1, n2):
        assert abs(half.mean() - LAMBDA / 2) < 4 * np.sqrt((LAMBDA / 2 + SIGMA_E**2 / 2) / N)
        assert abs(half.var() / (LAMBDA / 2 + SIGMA_E**2 / 2) - 1) < 0.02
    assert abs(np.corrcoef(n1.ravel(), n2.ravel())[0, 1]) < 4 * se
    # independence beyond correlation: the halves' squares are uncorrelated too (Poisson thinning is exact)
    assert abs(np.corrcoef((n1 - LAMBDA / 2).ravel() ** 2, (n2 - LAMBDA / 2).ravel() ** 2)[0, 1]) < 4 * se


@pytest.mark.parametrize("fraction", [0.2, 0.8])
def test_a_fraction_of_the_dose_is_an_independent_scan_of_that_dose(fraction):
    """thin_fraction: parts sum to the readings; part a has mean f lambda and variance f (lambda + sigma_e^2)
    (a scan at f I0 with sigma_e sqrt f), part b the rest; their correlation is 0 within 4/sqrt(N)."""
    rng = np.random.default_rng(5)
    m = _readings(rng)
    a, b = thin_fraction(m, fraction, rng)
    np.testing.assert_allclose(a.counts + b.counts, m.counts, rtol=0, atol=1e-9)
    for part, f in ((a, fraction), (b, 1 - fraction)):
        assert abs(part.counts.mean() - f * LAMBDA) < 4 * np.sqrt(f * (LAMBDA + SIGMA_E**2) / N)
        assert abs(part.counts.var() / (f * (LAMBDA + SIGMA_E**2)) - 1) < 0.02
        assert part.electronic_noise_std == pytest.approx(SIGMA_E * np.sqrt(f))
        np.testing.assert_allclose(part.i0, m.i0 * f)
        assert abs((part.counts - part.poisson).var() / (f * SIGMA_E**2) - 1) < 0.02
    assert abs(np.corrcoef(a.counts.ravel(), b.counts.ravel())[0, 1]) < 4 / np.sqrt(N)
    n1, n2 = thin_counts(a, rng)  # a part splits again into independent halves of its dose
    assert abs(np.corrcoef(n1.ravel(), n2.ravel())[0, 1]) < 4 / np.sqrt(N)
    assert abs(n1.var() / (fraction / 2 * (LAMBDA + SIGMA_E**2)) - 1) < 0.02


def test_a_plain_binomial_split_of_noisy_readings_would_correlate_the_halves():
    """The control: splitting P + e by halving e (no recorruption) correlates the halves by
    (sigma_e^2 / 4) / (lambda / 2 + sigma_e^2 / 4) = 0.31 here; the recorrupted pair removes it."""
    rng = np.random.default_rng(4)
    m = _readings(rng)
    b1 = rng.binomial(m.poisson, 0.5)
    e = m.counts - m.poisson
    naive = np.corrcoef((b1 + e / 2).ravel(), (m.poisson - b1 + e / 2).ravel())[0, 1]
    predicted = (SIGMA_E**2 / 4) / (LAMBDA / 2 + SIGMA_E**2 / 4)
    assert abs(naive - predicted) < 0.01


def test_measured_counts_recorrupted_halves_are_uncorrelated_with_the_half_dose_variance():
    rng = np.random.default_rng(5)
    m = _readings(rng)
    n1, n2 = recorrupt_counts(m.counts, SIGMA_E, rng)
    np.testing.assert_allclose(n1 + n2, m.counts, atol=1e-9)
    assert abs(np.corrcoef(n1.ravel(), n2.ravel())[0, 1]) < 4 / np.sqrt(N)
    assert abs(n1.var() / ((LAMBDA + SIGMA_E**2) / 2) - 1) < 0.02
    via_thin = thin_counts(m._replace(poisson=None), np.random.default_rng(5))  # no Poisson part: this rule
    assert via_thin[0].shape == m.counts.shape


def test_half_line_integrals_are_log_of_twice_the_half_against_i0():
    i0 = np.array([1000.0, 1000.0])
    np.testing.assert_allclose(half_line_integrals(np.array([500.0, 0.2]), i0), [0.0, -np.log(1 / 1000.0)], rtol=1e-6)


@pytest.fixture(scope="module")
def thinned_draws(demo_geometry):
    """48 quarter-dose realisations of a 160 mm water cylinder, thinned: x1, x2, x_est and the truth."""
    with AstraProjector(demo_geometry, kind="strip") as proj:
        clean = proj.forward(disk(demo_geometry, 80.0))
    ct = CTThinningModality(demo_geometry)
    i0 = incident_photons(demo_geometry, 0.25)
    rng = np.random.default_rng(7)
    images = [ct.split_and_reconstruct(simulate_count_sinogram(clean, i0, demo_geometry.protocol.electronic_noise_std,
                                                               rng), rng) for _ in range(48)]
    x, y = demo_geometry.pixel_centers_mm()
    truth = ct.to_units(ct.fbp_all(clean.astype(np.float32)))
    return {k: np.stack([getattr(im, k) for im in images]) for k in ("x1", "x2", "x_est")} | {
        "truth": truth, "roi": x**2 + y**2 < 48.0**2}


def test_thinned_halves_are_unbiased_and_uncorrelated_in_the_image(thinned_draws):
    """Per pixel over 48 draws: each half's mean equals the noiseless all-view FBP within its standard error
    (rms z < 1.15), and the halves' noise is uncorrelated (mean pixel correlation within 4/sqrt(48*pixels))."""
    d, roi = thinned_draws, thinned_draws["roi"][None]
    for half in ("x1", "x2"):
        img = d[half][:, 0]
        z = (img.mean(0) - d["truth"][0]) / (img.std(0, ddof=1) / np.sqrt(len(img)))
        assert np.sqrt(np.mean(z[roi[0]] ** 2)) < 1.15
    n1 = d["x1"][:, 0] - d["x1"][:, 0].mean(0)
    n2 = d["x2"][:, 0] - d["x2"][:, 0].mean(0)
    rho = (n1 * n2).sum(0) / np.sqrt((n1**2).sum(0) * (n2**2).sum(0))
    assert abs(rho[roi[0]].mean()) < 0.05
    # each half has twice x_est's noise variance (half the counts, every view)
    ratio = d["x1"][:, 0].var(0)[roi[0]].mean() / d["x_est"][:, 0].var(0)[roi[0]].mean()
    assert 1.8 < ratio < 2.2


def test_thinning_file_has_the_view_split_files_x_est_for_the_same_seed(tmp_path, demo_geometry):
    """Same seed, same readings: the x_est of both splits is the same image; only x1 and x2 differ."""
    mu = disk(demo_geometry, 70.0)
    hu = (1000 * (mu / mu.max() - 1)).astype(np.float32)[None].repeat(2, 0)
    stack = ImageStack(hu, np.full(2, demo_geometry.pixel_size_mm), ["s0", "s1"], ["p0", "p0"])
    files = {}
    for split in ("views", "thinning"):
        source = simulated_source(stack, demo_geometry, 0.25, 11, "test", counts=split == "thinning")
        files[split] = read_prepared(write_ct(tmp_path / f"{split}.h5", ct_modality(demo_geometry, "cpu", split),
                                              source, 11, progress=False).path)
    np.testing.assert_allclose(files["thinning"].x_est, files["views"].x_est, atol=2e-5)
    assert np.abs(files["thinning"].x1 - files["views"].x1).max() > 0.01
    assert files["thinning"].attrs["split_kind"] == "thinning"


def test_view_split_sinogram_equals_the_log_of_the_same_readings(demo_geometry):
    """simulate_count_sinogram draws exactly like simulate_low_dose: same generator state, same readings."""
    line = np.full((demo_geometry.n_views, demo_geometry.n_detectors), 2.0)
    i0 = incident_photons(demo_geometry, 0.25)
    via_counts = simulate_count_sinogram(line, i0, demo_geometry.protocol.electronic_noise_std,
                                         np.random.default_rng(2))
    direct = simulate_low_dose(line, demo_geometry, 0.25, np.random.default_rng(2))
    np.testing.assert_allclose(-np.log(np.maximum(via_counts.counts, 1) / i0), direct, atol=1e-6)


def test_mean_output_of_a_thinning_file_takes_x_est(tmp_path, demo_geometry):
    """Each thinned half is logged apart, so (x1 + x2) / 2 is not the reconstruction of all the data
    (they differ by noise that grows where few photons arrive); the file says so and the default
    output takes x_est."""
    from tomoconsensus.data.denoised import read_denoised
    from tomoconsensus.denoising import denoise
    from tomoconsensus.learn.loop import train

    from tests.conftest import tiny_config

    hu = np.where(disk(demo_geometry, 70.0) > 0, 0.0, -1000.0).astype(np.float32)[None].repeat(2, 0)
    stack = ImageStack(hu, np.full(2, demo_geometry.pixel_size_mm), ["s0", "s1"], ["p0", "p0"])
    path = write_ct(tmp_path / "t.h5", ct_modality(demo_geometry, "cpu", "thinning"),
                    simulated_source(stack, demo_geometry, 0.25, 3, "test", counts=True), 3, progress=False).path
    data = read_prepared(path)
    assert data.attrs["mean_input"] == "x_est"
    assert np.abs((data.x1 + data.x2) / 2 - data.x_est).max() * 1000 > 0.1  # HU
    train(tiny_config(method="noise2noise", max_steps=1), path, tmp_path / "run", progress=False)
    outs = {}
    for variant in ("mean", "full", "f1"):
        denoise(tmp_path / "run", path, tmp_path / f"{variant}.h5", variant=variant, progress=False)
        outs[variant] = read_denoised(tmp_path / f"{variant}.h5")[0]
    np.testing.assert_array_equal(outs["mean"], outs["full"])
    assert np.abs(outs["f1"] - outs["full"]).max() > 1e-3  # the control: another input, another output


def test_thinning_file_is_the_same_with_two_processes(tmp_path, demo_geometry):
    """Each slice thins with its own seed (drawn from its noise stream): --jobs 2 writes the --jobs 1 file."""
    hu = np.where(disk(demo_geometry, 60.0) > 0, 40.0, -1000.0).astype(np.float32)[None].repeat(3, 0)
    stack = ImageStack(hu, np.full(3, demo_geometry.pixel_size_mm), ["a", "b", "c"], ["p", "p", "p"])
    files = [read_prepared(write_ct(tmp_path / f"j{jobs}.h5", ct_modality(demo_geometry, "cpu", "thinning"),
                                    simulated_source(stack, demo_geometry, 0.25, 5, "test", counts=True), 5,
                                    progress=False, jobs=jobs, device="cpu").path) for jobs in (1, 2)]
    for key in ("x1", "x2", "x_est"):
        np.testing.assert_array_equal(getattr(files[0], key), getattr(files[1], key))
    assert np.abs(files[0].x1[0] - files[0].x1[1]).max() > 1e-3  # slices thinned with different seeds


def test_a_held_out_target_scan_scores_outputs_by_their_clean_error(demo_geometry):
    """The no-reference score of benchmarks/output_variant_choice.py on linear outputs: the input scan A
    (80 % of a quarter dose) and the target scan T (the rest) of a 160 mm water cylinder are independent,
    so S(v) = mean (v(A) - FBP(T))^2 differs between two outputs by their clean MSE difference:
    FBP(A) against FBP(A) smoothed by a 1.5-pixel Gaussian, 16 draws, agreement within 4 standard errors
    of the paired score difference, which itself is nonzero beyond 4 standard errors."""
    from scipy.ndimage import gaussian_filter

    with AstraProjector(demo_geometry, kind="strip") as proj:
        clean = proj.forward(disk(demo_geometry, 80.0))
    ct = CTThinningModality(demo_geometry)
    truth = ct.to_units(ct.fbp_all(clean.astype(np.float32)))[0]
    i0, rng = incident_photons(demo_geometry, 0.25), np.random.default_rng(11)
    d_score, d_clean = [], []
    for _ in range(16):
        m = simulate_count_sinogram(clean, i0, demo_geometry.protocol.electronic_noise_std, rng)
        a, t = thin_fraction(m, 0.8, rng)
        xa = ct.to_units(ct.fbp_all(full_line_integrals(a)))[0]
        xt = ct.to_units(ct.fbp_all(full_line_integrals(t)))[0]
        outs = (xa, gaussian_filter(xa, 1.5))
        s = [np.mean((o - xt) ** 2) for o in outs]
        c = [np.mean((o - truth) ** 2) for o in outs]
        d_score.append(s[1] - s[0])
        d_clean.append(c[1] - c[0])
    d_score, d_clean = np.array(d_score), np.array(d_clean)
    se = np.std(d_score - d_clean, ddof=1) / 4.0
    assert abs(d_score.mean() - d_clean.mean()) < 4 * se
    assert abs(d_score.mean()) > 4 * np.std(d_score, ddof=1) / 4.0

"""MR reconstructions against ground truth on synthetic multi-coil data (birdcage maps)."""

import numpy as np
import pytest
import sigpy as sp
import sigpy.mri as mr
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from tomoconsensus.modality import split_and_reconstruct
from tomoconsensus.mr.masks import random_split_mask
from tomoconsensus.mr.modality import MRMeasurement, MRModality
from tomoconsensus.mr.recon import espirit_maps, sense, zero_filled_combination

N = 128
CENTRE = 16  # 4x of 128 lines = 32 lines: 16 central + 16 random outer


@pytest.fixture(scope="module")
def phantom():
    image = resize(shepp_logan_phantom(), (N, N)).astype(np.complex64) * np.exp(1j * np.linspace(0, 1, N))[None]
    maps_true = mr.birdcage_maps((8, N, N)).astype(np.complex64)
    kspace = sp.fft(maps_true * image, axes=(-2, -1))
    maps = espirit_maps(kspace, CENTRE)
    return kspace, maps, zero_filled_combination(kspace, maps, np.ones(N))


def test_fully_sampled_zero_filling_equals_reference(phantom):
    kspace, maps, reference = phantom
    full = random_split_mask(N, np.random.default_rng(0), 1.0, N)
    x = zero_filled_combination(kspace * full.mask[None, :, None], maps, full.weight_full)
    assert np.linalg.norm(x - reference) / np.linalg.norm(reference) < 1e-5


def test_espirit_combination_recovers_the_object(phantom):
    kspace, maps, reference = phantom
    truth = resize(shepp_logan_phantom(), (N, N))
    support = truth > 0.05
    ratio = np.abs(reference[support]) / truth[support]
    assert np.std(ratio) / np.mean(ratio) < 0.05  # a smooth, nearly constant coil-combination gain


def test_weighted_halves_are_unbiased_error_falls_as_inverse_sqrt_n(phantom):
    kspace, maps, reference = phantom
    rng = np.random.default_rng(3)
    acc, errors = np.zeros_like(reference), {}
    for i in range(1, 201):
        d = random_split_mask(N, rng, 4.0, CENTRE)
        acc += zero_filled_combination(kspace * d.half1[None, :, None], maps, np.where(d.half1, d.weight_half1, 0))
        if i in (50, 200):
            errors[i] = np.linalg.norm(acc / i - reference) / np.linalg.norm(reference)
    assert errors[200] < 0.15
    assert errors[50] / errors[200] == pytest.approx(2.0, rel=0.3)  # 1/sqrt(n): 4x the draws, half the error


def test_halves_have_low_aliasing_correlation(phantom):
    kspace, maps, reference = phantom
    mod = MRModality(4.0, 24)
    rng = np.random.default_rng(4)
    rhos = []
    for _ in range(10):
        m = MRMeasurement(kspace * random_split_mask(N, rng, 4.0, CENTRE).mask[None, :, None], None, maps, 1.0)
        m.design = random_split_mask(N, rng, 4.0, CENTRE)
        m.kspace = kspace * m.design.mask[None, :, None]
        half1, half2 = mod.split(m)
        e1 = mod.reconstruct(half1) - np.stack([reference.real, reference.imag])
        e2 = mod.reconstruct(half2) - np.stack([reference.real, reference.imag])
        rhos.append(np.sum(e1 * e2) / np.sqrt(np.sum(e1**2) * np.sum(e2**2)))
    assert abs(np.mean(rhos)) < 0.15  # the centre lines are shared, the outer lines are not


def test_sense_beats_zero_filling_and_modality_gives_two_channels(phantom):
    kspace, maps, reference = phantom
    d = random_split_mask(N, np.random.default_rng(5), 4.0, CENTRE)
    m = MRMeasurement(kspace * d.mask[None, :, None], d, maps, 1.0)
    images = split_and_reconstruct(MRModality(4.0, CENTRE), m, np.random.default_rng(0))
    assert images.x1.shape == images.x2.shape == images.x_est.shape == (2, N, N)
    ref = np.stack([reference.real, reference.imag])
    zero_filled = MRModality(4.0, CENTRE).zero_filled(m)
    err = lambda x: np.linalg.norm(x - ref) / np.linalg.norm(ref)  # noqa: E731
    assert err(images.x_est) < 0.9 * err(zero_filled)
    assert np.linalg.norm(sense(m.kspace, maps, d.mask) - reference) < np.linalg.norm(zero_filled_combination(
        m.kspace, maps, d.mask.astype(float)) - reference)


def test_sigpy_device_names():
    import sigpy

    from tomoconsensus.errors import InputError
    from tomoconsensus.mr.recon import sigpy_device

    assert sigpy_device("cpu") == -1
    with pytest.raises(InputError, match="--device.*cpu, cuda"):
        sigpy_device("gpu")
    if not sigpy.config.cupy_enabled:
        assert sigpy_device("auto") == -1
        with pytest.raises(InputError, match="CuPy"):
            sigpy_device("cuda")


@pytest.mark.gpu
def test_espirit_and_sense_on_gpu_match_cpu(phantom):
    import sigpy

    if not sigpy.config.cupy_enabled:
        pytest.skip("SigPy without CuPy")
    kspace, maps_cpu, _ = phantom
    maps_gpu = espirit_maps(kspace, CENTRE, device=0)
    # ESPIRiT maps are defined up to a common phase per pixel; compare the coil combinations' magnitude.
    assert np.abs(np.abs(maps_gpu) - np.abs(maps_cpu)).max() < 1e-3
    mask = np.zeros(N, bool)
    mask[::2] = True
    a = sense(kspace * mask[None, :, None], maps_cpu, mask, device=-1)
    b = sense(kspace * mask[None, :, None], maps_cpu, mask, device=0)
    assert np.abs(a - b).max() / np.abs(a).max() < 1e-4

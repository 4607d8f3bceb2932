"""Data consistency at inference against exact solutions (small birdcage problem, normalised maps)."""

import numpy as np
import pytest
import sigpy as sp
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from tomoconsensus.errors import InputError
from tomoconsensus.mr.consistency import data_consistency, from_channels, heldout_error, predicted_lines
from tomoconsensus.mr.masks import random_split_mask
from tomoconsensus.mr.recon import to_channels, zero_filled_combination
from tomoconsensus.mr.simulate import birdcage_sensitivities

N = 48


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    truth = resize(shepp_logan_phantom(), (N, N)) * np.exp(1j * np.linspace(0, 1, N))[None]
    maps = birdcage_sensitivities(4, (N, N))  # root-sum-of-squares 1: S^H S = I
    kspace = sp.fft(maps * truth, axes=(-2, -1))
    noisy = (kspace + 0.01 * (rng.normal(size=kspace.shape) + 1j * rng.normal(size=kspace.shape))).astype(np.complex64)
    prior = (truth + 0.05 * rng.normal(size=truth.shape)).astype(np.complex64)
    design = random_split_mask(N, rng, 3.0, 8)
    return truth, maps, noisy, prior, design


def test_channels_round_trip(problem):
    truth = problem[0]
    assert np.allclose(from_channels(to_channels(truth, 2.5), 2.5), truth, atol=1e-6)


def test_large_lamda_returns_the_prior(problem):
    _, maps, kspace, prior, design = problem
    x = data_consistency(kspace, maps, design.mask, prior, 1e8)
    assert np.linalg.norm(x - prior) / np.linalg.norm(prior) < 1e-6


def test_full_sampling_has_the_closed_form(problem):
    _, maps, kspace, prior, _ = problem
    adjoint = zero_filled_combination(kspace, maps, np.ones(N))  # S^H F^H y
    for lamda in (1e-6, 0.3):
        x = data_consistency(kspace, maps, np.ones(N, bool), prior, lamda)
        assert np.linalg.norm(x - (adjoint + lamda * prior) / (1 + lamda)) / np.linalg.norm(adjoint) < 1e-4


def test_undersampled_solution_satisfies_the_normal_equations(problem):
    _, maps, kspace, prior, design = problem
    lamda, lines = 0.05, design.mask
    x = data_consistency(kspace, maps, lines, prior, lamda, tol=1e-7)
    m = lines[None, :, None]
    normal = zero_filled_combination(m * predicted_lines(x, maps), maps, np.ones(N)) + lamda * x
    rhs = zero_filled_combination(m * kspace, maps, np.ones(N)) + lamda * prior
    assert np.linalg.norm(normal - rhs) / np.linalg.norm(rhs) < 1e-4
    assert not np.allclose(x, prior, atol=1e-3)  # the data moved it


def test_heldout_error_is_zero_for_the_truth_and_refuses_shared_lines(problem):
    truth, maps, kspace, _, design = problem
    clean = sp.fft(maps * truth, axes=(-2, -1))
    outer2 = design.half2 & ~design.half1
    errors = heldout_error(clean, maps, design.half1, outer2, truth, [1e-3, 1.0, np.inf])
    assert np.all(errors < 1e-6 * np.sum(np.abs(clean) ** 2))
    with pytest.raises(InputError):
        heldout_error(clean, maps, design.half1, design.half2, truth, [1.0])

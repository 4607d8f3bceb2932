"""Simulated fully sampled multi-coil k-space from real anatomical magnitude images.

Used where no openly licensed multi-coil k-space with enough slices can be shipped (the MR demo,
CI tests). The object is a real image with a smooth random background phase (as MR images have);
coil sensitivities are SigPy's birdcage maps, normalised so that the root-sum-of-squares is 1 (the
coil-combined image then equals the object, with no bias field); the noise is i.i.d. complex
Gaussian in k-space, which with the orthonormal FFT has the same standard deviation per coil-image
pixel.

What this does *not* model: field inhomogeneity, T2* decay during readout, correlated coil noise,
motion. The undersampling, the split and its weights, ESPIRiT and SENSE then run exactly as on
measured data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sigpy as sp
import sigpy.mri

from tomoconsensus.mr.io import KSpaceVolume

#: Piecewise-linear map from CT number (HU) to a T1-weighted-like relative MR signal: air and
#: lung dark, fat brightest, fluid darker than muscle and liver, cortical bone dark, fatty marrow
#: intermediate. Purely a contrast for the demo's simulated object, not a tissue model.
T1_LIKE_HU = (-1000.0, -900.0, -500.0, -150.0, -100.0, -50.0, 0.0, 40.0, 80.0, 200.0, 400.0, 1000.0)
T1_LIKE_SIGNAL = (0.0, 0.02, 0.08, 0.9, 1.0, 0.7, 0.3, 0.45, 0.55, 0.7, 0.5, 0.1)


def t1_like_magnitude(hu: np.ndarray) -> np.ndarray:
    """CT image (HU) -> T1-weighted-like relative signal in [0, 1] (same shape, float64)."""
    return np.interp(hu, T1_LIKE_HU, T1_LIKE_SIGNAL)


def smooth_phase(shape: tuple[int, int], rng: np.random.Generator, max_radians: float = 1.0) -> np.ndarray:
    """A random smooth background phase (y, x) in radians: a bilinear polynomial over the FOV.

    Each of the three coefficients (x, y, xy on [-1, 1]^2) is normal with std ``max_radians / 2``.
    """
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    a, b, c = rng.normal(scale=max_radians / 2, size=3)
    return a * x + b * y + c * x * y


def birdcage_sensitivities(n_coils: int, shape: tuple[int, int]) -> np.ndarray:
    """SigPy birdcage coil maps (coils, y, x) complex64, normalised to root-sum-of-squares 1."""
    maps = sigpy.mri.birdcage_maps((n_coils, *shape))
    return (maps / np.sqrt(np.sum(np.abs(maps) ** 2, axis=0, keepdims=True))).astype(np.complex64)


def simulate_kspace(image: np.ndarray, maps: np.ndarray, noise_std: float, rng: np.random.Generator) -> np.ndarray:
    """Fully sampled multi-coil k-space of a complex object with complex Gaussian noise.

    Parameters
    ----------
    image : (y, x) complex object
    maps : (coils, y, x) complex sensitivities
    noise_std : float
        Standard deviation of the complex noise per k-space sample (real and imaginary parts each
        ``noise_std / sqrt(2)``), in the units of ``image`` (orthonormal FFT).

    Returns
    -------
    (coils, ky, kx) complex64, DC at index (ky // 2, kx // 2)
    """
    kspace = sp.fft(maps * image, axes=(-2, -1))
    noise = rng.normal(size=kspace.shape) + 1j * rng.normal(size=kspace.shape)
    return (kspace + noise_std / np.sqrt(2) * noise).astype(np.complex64)


def simulated_volumes(magnitudes: Sequence[np.ndarray], volume_ids: Sequence[str], n_coils: int, noise_std: float,
                      rng: np.random.Generator, max_phase_radians: float = 1.0,
                      source: Path = Path("simulated")) -> list[KSpaceVolume]:
    """Multi-coil k-space volumes from magnitude images, grouped by volume (patient) id.

    Parameters
    ----------
    magnitudes : sequence of (y, x) real images, all the same shape
    volume_ids : the volume each image belongs to (consecutive or not; order kept within a volume)
    n_coils, noise_std : birdcage coil count and k-space noise (see :func:`simulate_kspace`)
    rng : draws each image's smooth phase, then its noise

    Returns
    -------
    list of KSpaceVolume, one per distinct id, k-space (slices, coils, ky, kx) complex64
    """
    maps = birdcage_sensitivities(n_coils, magnitudes[0].shape)
    kspace: dict[str, list[np.ndarray]] = {}
    for magnitude, volume_id in zip(magnitudes, volume_ids, strict=True):
        image = magnitude * np.exp(1j * smooth_phase(magnitude.shape, rng, max_phase_radians))
        kspace.setdefault(volume_id, []).append(simulate_kspace(image, maps, noise_std, rng))
    return [KSpaceVolume(np.stack(k), volume_id, source) for volume_id, k in kspace.items()]

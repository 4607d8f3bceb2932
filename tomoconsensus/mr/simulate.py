"""Simulated fully sampled multi-coil k-space from real anatomical magnitude images.

Used where no openly licensed multi-coil k-space with enough slices can be shipped (the MR demo,
CI tests). The object is a real image with a smooth random background phase (as MR images have);
coil sensitivities are SigPy's birdcage maps (elements on a ring around the object), normalised so
that the root-sum-of-squares is 1 (the coil-combined image then equals the object, no bias field).

Two simulations (docs/mr-simulation.md gives the sources of each choice):

* ``"simple"`` (:func:`simulated_volumes`): k-space on the image grid with i.i.d. complex Gaussian
  noise of a given standard deviation per sample.
* ``"scanner"`` (:func:`scanner_volumes`, the MR demo's default): what a receive array records and
  what the raw-data readers (:mod:`tomoconsensus.mr.raw`) then do with it. The readout is 2x
  oversampled (the object in a field of view twice as wide along the readout), the coil noise is
  correlated (neighbouring elements of the ring ``rho``, ``rho ** d`` at ring distance ``d``, as
  :func:`ring_noise_correlation`), its level is set by an SNR (:func:`noise_std_for_snr`), and a
  noise scan (readouts without signal) is recorded with it. :func:`tomoconsensus.mr.raw.assemble_lines`
  then pre-whitens with the noise scan and removes the oversampling, exactly as for a scanner file.

What this does *not* model: field inhomogeneity, T2* decay during readout, motion, several rings of
elements along the magnet axis. The undersampling, the split and its weights, ESPIRiT and SENSE
then run exactly as on measured data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sigpy as sp
import sigpy.mri

from tomoconsensus.errors import InputError
from tomoconsensus.mr.io import KSpaceVolume, validate_kspace
from tomoconsensus.mr.raw import ReadoutLines, assemble_lines

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


def birdcage_sensitivities(n_coils: int, shape: tuple[int, int], radius: float = 1.5) -> np.ndarray:
    """SigPy birdcage coil maps (coils, y, x) complex64, normalised to root-sum-of-squares 1.

    Element ``c`` sits at angle ``2 pi c / n_coils`` on a ring of ``radius`` half fields of view
    around the centre (neighbouring indices are neighbouring elements); its sensitivity falls as
    1 / distance, with a phase that turns once around the element.
    """
    maps = sigpy.mri.birdcage_maps((n_coils, *shape), r=radius)
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


# ---- the "scanner" simulation: correlated coil noise, SNR, readout oversampling, noise scan ----

#: Tissue region of the SNR: object magnitude at least this fraction of the images' maximum.
SNR_TISSUE_FRACTION = 0.25


def ring_noise_correlation(n_coils: int, neighbour: float = 0.3) -> np.ndarray:
    """Coil noise correlation (coils, coils) of a ring of elements: ``neighbour ** d``, d the ring distance.

    Raises InputError unless the matrix is positive definite (every element with its own noise).
    """
    i = np.arange(n_coils)
    d = np.abs(i[:, None] - i[None, :])
    correlation = neighbour ** np.minimum(d, n_coils - d).astype(float)
    if not 0 <= neighbour < 1 or np.linalg.eigvalsh(correlation).min() <= 0:
        raise InputError("simulation", "coil noise correlation", "a neighbour correlation in [0, 1) giving a "
                         "positive definite coil noise covariance", neighbour)
    return correlation


def correlated_noise(shape: tuple[int, ...], std: float, correlation: np.ndarray, rng: np.random.Generator):
    """Complex Gaussian noise (coils, ...) with covariance ``std**2 * correlation`` between coils."""
    parts = rng.normal(scale=std / np.sqrt(2), size=(2, shape[0], int(np.prod(shape[1:]))))
    return (np.linalg.cholesky(correlation) @ (parts[0] + 1j * parts[1])).reshape(shape)  # matmul: BLAS


def rss_noise_factor(maps: np.ndarray, correlation: np.ndarray, roi: np.ndarray) -> float:
    """Noise std of the root-sum-of-squares magnitude image per unit k-space noise std, over ``roi``.

    Where the signal dominates, RSS = ||S x + n|| ~ |x| + Re(e^{-i phase} S^H n) (maps with RSS 1),
    whose variance is ``sigma**2 S^H R S / 2``; the factor is the root of its mean over ``roi`` (y, x).
    """
    s = maps[:, roi]
    return float(np.sqrt(np.mean(np.real(np.einsum("cp,cd,dp->p", s.conj(), correlation, s))) / 2))


def noise_std_for_snr(snr: float, magnitudes: Sequence[np.ndarray], maps: np.ndarray,
                      correlation: np.ndarray) -> float:
    """k-space noise std (per coil and sample, object units) that gives the RSS image this SNR.

    SNR as NEMA MS 1 measures it: mean signal of the fully sampled root-sum-of-squares image over a
    tissue region (object magnitude >= :data:`SNR_TISSUE_FRACTION` of the maximum of ``magnitudes``),
    divided by the standard deviation of that image's noise there (:func:`rss_noise_factor`).
    """
    stack = np.abs(np.stack(magnitudes))
    roi = stack >= SNR_TISSUE_FRACTION * stack.max()
    return float(stack[roi].mean() / (snr * rss_noise_factor(maps, correlation, roi.any(axis=0))))


def oversampled_kspace(image: np.ndarray, maps: np.ndarray, factor: int = 2) -> np.ndarray:
    """Noiseless coil k-space (coils, ky, factor * kx) of a readout oversampled ``factor`` times.

    The coil images are placed in a field of view ``factor`` times wider along x (empty outside);
    scaled by sqrt(factor) so that :func:`tomoconsensus.mr.raw.remove_readout_oversampling` gives back
    ``sigpy.fft(maps * image)`` on the (ky, kx) grid.
    """
    coils, ny, nx = maps.shape
    padded = np.zeros((coils, ny, factor * nx), np.complex128)
    start = factor * nx // 2 - nx // 2
    padded[..., start:start + nx] = maps * image
    return np.sqrt(factor) * sp.fft(padded, axes=(-2, -1))


@dataclass(frozen=True)
class ScannerSimulation:
    """How :func:`scanner_volumes` acquires (docs/mr-simulation.md for the sources of the defaults).

    Attributes
    ----------
    coils : int, elements on the ring (the paper's knee coil: 15)
    snr : float, SNR of the fully sampled RSS image (:func:`noise_std_for_snr`); ignored if ``noise_std``
    noise_std : float or None, k-space noise std per coil and sample (object units, before pre-whitening)
    neighbour_correlation : float, noise correlation of neighbouring elements (:func:`ring_noise_correlation`)
    readout_oversampling : int, readout samples per image pixel (Siemens, and the NYU/fastMRI knee data: 2)
    noise_readouts : int, readouts of the noise scan (each ``readout_oversampling * kx`` samples)
    coil_radius : float, ring radius in half fields of view (:func:`birdcage_sensitivities`)
    """

    coils: int = 15
    snr: float = 30.0
    noise_std: float | None = None
    neighbour_correlation: float = 0.3
    readout_oversampling: int = 2
    noise_readouts: int = 64
    coil_radius: float = 1.5

    def attributes(self, noise_std: float) -> dict:
        """What a prepared file records of the simulation (with the noise std actually used)."""
        return {"simulation": "scanner", "coils": self.coils, "snr": self.snr, "noise_std": noise_std,
                "coil_noise_neighbour_correlation": self.neighbour_correlation,
                "readout_oversampling": self.readout_oversampling, "noise_scan_readouts": self.noise_readouts,
                "coil_ring_radius": self.coil_radius, "snr_tissue_fraction": SNR_TISSUE_FRACTION}


def scanner_lines(images: Sequence[np.ndarray], maps: np.ndarray, noise_std: float, correlation: np.ndarray,
                  sim: ScannerSimulation, rng: np.random.Generator) -> ReadoutLines:
    """The readout lines (every line of every slice) and noise scan of one volume of complex images.

    Imaging and noise-scan samples both carry noise of covariance ``factor * noise_std**2 * correlation``
    per oversampled sample (the same receiver bandwidth: dwell ratio 1).
    """
    f, (coils, ny, nx) = sim.readout_oversampling, maps.shape
    std = np.sqrt(f) * noise_std
    data = np.stack([oversampled_kspace(image, maps, f) + correlated_noise((coils, ny, f * nx), std, correlation, rng)
                     for image in images])  # (slices, coils, ky, samples)
    noise = correlated_noise((coils, sim.noise_readouts * f * nx), std, correlation, rng)
    lines = data.transpose(0, 2, 1, 3).reshape(-1, coils, f * nx).astype(np.complex64)
    return ReadoutLines(lines, np.repeat(np.arange(len(images)), ny), np.tile(np.arange(ny), len(images)), ny,
                        ny // 2, f * nx // 2, nx, noise.astype(np.complex64), 1.0, {"format": "simulated scanner"})


def scanner_volumes(magnitudes: Sequence[np.ndarray], volume_ids: Sequence[str], sim: ScannerSimulation,
                    rng: np.random.Generator, max_phase_radians: float = 1.0, source: Path = Path("simulated"),
                    noise_std: float | None = None) -> list[KSpaceVolume]:
    """Multi-coil k-space volumes as a scanner's raw-data reader returns them (module docstring).

    Parameters
    ----------
    magnitudes, volume_ids : as :func:`simulated_volumes`
    sim : ScannerSimulation
    rng : draws each image's smooth phase, then per volume the imaging noise and the noise scan
    noise_std : float, optional; overrides ``sim`` (one level for several calls; see :func:`scanner_noise_std`)

    Returns
    -------
    list of KSpaceVolume, one per distinct id: (slices, coils, ky, kx) complex64, pre-whitened with
    the volume's noise scan and with the oversampling removed (``notes`` say so)
    """
    maps = birdcage_sensitivities(sim.coils, magnitudes[0].shape, sim.coil_radius)
    correlation = ring_noise_correlation(sim.coils, sim.neighbour_correlation)
    std = scanner_noise_std(sim, magnitudes, maps, correlation) if noise_std is None else noise_std
    images: dict[str, list[np.ndarray]] = {}
    for magnitude, volume_id in zip(magnitudes, volume_ids, strict=True):
        images.setdefault(volume_id, []).append(magnitude * np.exp(1j * smooth_phase(magnitude.shape, rng,
                                                                                       max_phase_radians)))
    volumes = []
    for volume_id, objects in images.items():
        kspace, acquired, notes = assemble_lines(scanner_lines(objects, maps, std, correlation, sim, rng), source)
        volumes.append(KSpaceVolume(validate_kspace(kspace, source), volume_id, source, acquired, notes))
    return volumes


def scanner_noise_std(sim: ScannerSimulation, magnitudes: Sequence[np.ndarray], maps: np.ndarray | None = None,
                      correlation: np.ndarray | None = None) -> float:
    """``sim.noise_std``, or the std that gives ``magnitudes`` the SNR ``sim.snr`` (:func:`noise_std_for_snr`)."""
    if sim.noise_std is not None:
        return sim.noise_std
    if maps is None:
        maps = birdcage_sensitivities(sim.coils, magnitudes[0].shape, sim.coil_radius)
    if correlation is None:
        correlation = ring_noise_correlation(sim.coils, sim.neighbour_correlation)
    return noise_std_for_snr(sim.snr, magnitudes, maps, correlation)

"""MR reconstructions: ESPIRiT coil maps, weighted zero-filled coil combination, SENSE.

Conventions: multi-coil k-space arrays are ``(coils, ky, kx)`` complex with k = 0 at index
``(ky // 2, kx // 2)``; the phase-encode (undersampled) axis is ``ky``. The image is the centred,
orthonormal inverse FFT (``sigpy.ifft``, which equals
``fftshift(ifft2(ifftshift(k)))`` times sqrt(N)).
"""

from __future__ import annotations

import numpy as np
import sigpy as sp
import sigpy.mri.app as mri_app

from tomoconsensus.devices import check_device
from tomoconsensus.errors import InputError


def sigpy_device(name: str = "auto") -> int:
    """SigPy device index for ``cpu`` (-1), ``cuda`` / ``cuda:N`` (GPU N, needs CuPy) or ``auto``.

    ``auto`` takes GPU 0 when CuPy is installed and sees a GPU, the CPU otherwise
    (:mod:`tomoconsensus.devices`).
    """
    check_device(name)
    if name == "cpu":
        return -1
    if name == "auto":
        return 0 if sp.config.cupy_enabled and _cupy_gpu_count() > 0 else -1
    if not sp.config.cupy_enabled:
        raise InputError("--device", name, "CuPy installed for SigPy on the GPU (pip install cupy-cuda12x)",
                         "CuPy not found")
    index, count = int(name.partition(":")[2] or 0), _cupy_gpu_count()
    if index >= count:
        raise InputError("--device", name, f"a GPU index below {count} (GPUs seen by CuPy)", index)
    return index


def _cupy_gpu_count() -> int:
    import cupy

    try:
        return cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:
        return 0


def coil_images(kspace: np.ndarray) -> np.ndarray:
    """(coils, ky, kx) k-space -> (coils, y, x) coil images (centred orthonormal iFFT)."""
    return sp.ifft(kspace, axes=(-2, -1))


def espirit_maps(kspace: np.ndarray, calib_width: int = 24, device: int = -1) -> np.ndarray:
    """ESPIRiT sensitivity maps (coils, y, x) from the fully sampled centre of ``kspace`` (SigPy).

    Parameters
    ----------
    device : int
        -1 for the CPU, a GPU index for SigPy with CuPy.
    """
    app = mri_app.EspiritCalib(kspace, calib_width=calib_width, device=sp.Device(device), show_pbar=False)
    return sp.to_device(app.run(), -1)


def coil_compression_matrix(calibration: np.ndarray, n_virtual: int) -> np.ndarray:
    """Software coil compression (Buehrer et al. 2007; Huang et al. 2008): (n_virtual, coils) complex.

    The rows are the ``n_virtual`` leading left singular vectors of the calibration data
    ``calibration`` (coils, ...) (e.g. the central k-space lines): the virtual coils that keep most
    of the signal energy. The rows are orthonormal, so pre-whitened noise (independent, equal
    variance per coil) stays white; with ``n_virtual`` at least the rank of the data nothing is lost.
    """
    coils = calibration.shape[0]
    if not 1 <= n_virtual <= coils:
        raise InputError("--virtual-coils", "virtual coils", f"between 1 and the {coils} coils", n_virtual)
    u, _, _ = np.linalg.svd(calibration.reshape(coils, -1).astype(np.complex128), full_matrices=False)
    return u[:, :n_virtual].conj().T


def compress_coils(kspace: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(coils, ...) data -> (n_virtual, ...) complex64 with a :func:`coil_compression_matrix`."""
    return np.einsum("vc,c...->v...", matrix, kspace).astype(np.complex64)


def zero_filled_combination(kspace: np.ndarray, maps: np.ndarray, line_weight: np.ndarray) -> np.ndarray:
    """Linear coil combination x = sum_c conj(S_c) iFFT(w * k_c), w weighting each ky line.

    Parameters
    ----------
    kspace : (coils, ky, kx) complex, zero where not sampled
    maps : (coils, y, x) complex sensitivities
    line_weight : (ky,) real, e.g. 1/p for unbiased undersampled data, 1 for plain zero-filling

    Returns
    -------
    (y, x) complex image
    """
    weighted = kspace * line_weight[None, :, None]
    return np.sum(np.conj(maps) * coil_images(weighted), axis=0)


def sense(kspace: np.ndarray, maps: np.ndarray, mask: np.ndarray, lamda: float = 0.01, max_iter: int = 30,
          device: int = -1) -> np.ndarray:
    """SENSE reconstruction (SigPy ``SenseRecon``, L2-regularised least squares) -> (y, x) complex."""
    weights = np.broadcast_to(mask[:, None], kspace.shape[1:]).astype(np.float32)
    app = mri_app.SenseRecon(kspace * weights, maps, lamda=lamda, weights=weights, max_iter=max_iter,
                             device=sp.Device(device), show_pbar=False)
    return sp.to_device(app.run(), -1)


def to_channels(image: np.ndarray, scale: float) -> np.ndarray:
    """Complex (y, x) -> (2, y, x) float32 real/imaginary, multiplied by ``scale``."""
    return (np.stack([image.real, image.imag]) * scale).astype(np.float32)

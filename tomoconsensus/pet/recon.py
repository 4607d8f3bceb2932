"""PET reconstruction on the ASTRA parallel-beam geometry: corrected FBP (linear) and OSEM.

Model (per slice): ``E[y] = m * (A x) + a`` with ``A`` the line integrals in mm on the parallel
geometry (:func:`pet_geometry`), ``m`` the multiplicative factor, ``a`` the additive term.

* Corrected FBP, ``x = FBP((y - a) / m)``, is linear in ``y``: its expectation is ``FBP(A x)``,
  the band-limited activity, whatever the count level. A thinned half has ``E[y_k] = (m A x + a) / 2``,
  so ``x_k = 2 FBP((y_k - a/2) / m)`` has the same expectation as the full-count FBP and
  ``(x_1 + x_2) / 2 = FBP((y - a) / m)`` exactly.
* OSEM (Hudson & Larkin 1994) keeps images non-negative; at low counts that makes it biased
  upwards in cold regions (the expectation of a non-negative estimate of ~0 is > 0), and the bias
  grows as the counts drop, so its halves are *not* unbiased for the full-count image. It is an
  option, with its bias measured in docs/pet.md.
"""

from __future__ import annotations

import math

import numpy as np

from tomoconsensus.errors import InputError
from tomoconsensus.pet.limits import BYTES_PER_PIXEL, check_memory
from tomoconsensus.tomo.fbp import FBP
from tomoconsensus.tomo.geometry import ParallelBeamGeometry
from tomoconsensus.tomo.linop import Linop
from tomoconsensus.tomo.projector import AstraProjector


def pet_geometry(angles_deg: np.ndarray, n_bins: int, bin_size_mm: float, image_size: int,
                 pixel_size_mm: float, name: str = "pet-parallel") -> ParallelBeamGeometry:
    """The parallel geometry of a prompt sinogram (views uniformly over 180 degrees) and image grid."""
    for field, value in (("--image-size", image_size), ("--pixel-size-mm", pixel_size_mm)):
        if not value > 0:
            raise InputError(field, field.lstrip("-"), "a positive number", value)
    check_memory(float(image_size) ** 2 * BYTES_PER_PIXEL, "--image-size", "image-size",
                 f"{image_size} x {image_size} images and their reconstruction")
    angles_deg = np.asarray(angles_deg, dtype=np.float64)
    return ParallelBeamGeometry(name=name, image_size=int(image_size), pixel_size_mm=float(pixel_size_mm),
                                n_views=len(angles_deg), n_detectors=int(n_bins), detector_pitch_mm=float(bin_size_mm),
                                angular_range_deg=180.0, start_angle_deg=float(angles_deg[0]))


class CorrectedFBP(Linop):
    """``x = scale * FBP((y - a) / m)`` for one geometry (Hann-apodised ramp by default).

    Called with the counts, ``m``, ``a`` and ``scale``, it is the affine corrected FBP. As a NumPy
    :class:`~tomoconsensus.tomo.linop.Linop` it is its linear part, ``forward(y) = scale * FBP(y / m)``
    for the ``mult`` and ``scale`` given here (sinogram ``(views, bins)`` -> image ``(N, N)``, float32);
    no adjoint (use the projector's, :class:`~tomoconsensus.tomo.projector.AstraProjector`).

    Parameters
    ----------
    geom : ParallelBeamGeometry
    window : {"hann", "ram-lak"}
    mult : ndarray (views, bins) or float
        ``m`` of :meth:`forward` (default 1).
    scale : float
        ``scale`` of :meth:`forward` (default 1).
    """

    native, dtype, device, has_adjoint = "numpy", np.dtype(np.float32), "cpu", False
    adjoint_instead = "AstraProjector's adjoint: FBP is a reconstruction"

    def __init__(self, geom: ParallelBeamGeometry, window: str = "hann", mult: np.ndarray | float = 1.0,
                 scale: float = 1.0):
        self.geom = geom
        self.window = window
        self.fbp = FBP(geom, None, window)
        self.mult, self.scale = mult, scale
        self.ishape, self.oshape = (geom.n_views, geom.n_detectors), (geom.image_size, geom.image_size)

    def _forward(self, sinogram: np.ndarray) -> np.ndarray:
        return self(sinogram, self.mult, 0.0, self.scale)

    def __call__(self, counts: np.ndarray, mult: np.ndarray, add: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Counts, m and a (views, bins) -> activity image (N, N), float32, times ``scale``."""
        line_integrals = (np.asarray(counts, np.float64) - add) / mult
        return (scale * self.fbp(line_integrals.astype(np.float32)).numpy()).astype(np.float32)


class OSEM:
    """Ordered-subsets EM for ``E[y] = m (A x) + a``, non-negative images.

    Parameters
    ----------
    geom : ParallelBeamGeometry
    iterations, subsets : int
        Full passes through the data, and subsets of interleaved views per pass.
    """

    def __init__(self, geom: ParallelBeamGeometry, iterations: int = 4, subsets: int = 8):
        if geom.n_views % subsets:
            raise InputError("--osem-subsets", "subsets", f"a divisor of the {geom.n_views} views", subsets)
        self.geom, self.iterations, self.subsets = geom, iterations, subsets
        self.views = [np.arange(s, geom.n_views, subsets) for s in range(subsets)]
        self.projectors = [AstraProjector(geom, views=v, use_cuda=False, kind="line") for v in self.views]

    def __call__(self, counts: np.ndarray, mult: np.ndarray, add: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Counts, m and a (views, bins) -> activity (N, N) float32; ``scale`` multiplies ``m`` by 1/scale.

        A half with ``E[y_k] = (m A x + a) / 2`` is reconstructed with ``scale = 2`` and ``a/2``: the
        model ``(m / 2) A x + a / 2`` then estimates the full-count activity directly.
        """
        y = np.asarray(counts, np.float64)
        m = np.asarray(mult, np.float64) / scale
        n = self.geom.image_size
        ones = np.ones((n, n), np.float32)
        total = sum(float((m[v] * p.forward(ones)).sum()) for p, v in zip(self.projectors, self.views, strict=True))
        x = np.full((n, n), max(float(y.sum() - add.sum()), 1.0) / max(total, 1e-12))  # matches the net counts
        sens = [np.maximum(p.adjoint(m[v]).astype(np.float64), 1e-12)
                for p, v in zip(self.projectors, self.views, strict=True)]
        for _ in range(self.iterations):
            for p, v, s in zip(self.projectors, self.views, sens, strict=True):
                expected = m[v] * p.forward(x) + add[v]
                ratio = np.divide(y[v], expected, out=np.zeros_like(expected), where=expected > 0)
                x *= p.adjoint(m[v] * ratio) / s
        return x.astype(np.float32)

    def close(self) -> None:
        for p in self.projectors:
            p.close()


def attenuation_factors(mu_per_mm: np.ndarray, geom: ParallelBeamGeometry) -> np.ndarray:
    """``exp(-integral mu dl)`` (views, bins) of a 511-keV attenuation map (N, N) in 1/mm."""
    with AstraProjector(geom, use_cuda=False, kind="strip") as proj:
        return np.exp(-proj.forward(mu_per_mm).astype(np.float64))


def fwhm_to_sigma(fwhm: float) -> float:
    """Gaussian standard deviation from its full width at half maximum."""
    return fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))

"""The CT modality: the odd/even projection split and FBP of each half (:mod:`tomoconsensus.tomo.split`),
images in HU/1000.

The split, the FBP operators and the identity ``x_est = (x1 + x2) / 2`` that lets preparation filter each
view once are the tomography layer's (:class:`~tomoconsensus.tomo.split.ProjectionSplitFBP`, shared with
spectral CT); this module adds CT's units, HU/1000 with one channel, from the water attenuation of the
geometry's dose protocol.
"""

from __future__ import annotations

import numpy as np

from tomoconsensus.ct.noise import mu_to_hu
from tomoconsensus.modality import SplitImages
from tomoconsensus.tomo.split import ProjectionSplitFBP


class CTModality(ProjectionSplitFBP):
    """Fan-beam CT as a :class:`~tomoconsensus.modality.Modality`.

    Measurements are sinograms of line integrals ``(views, channels)``; images are in HU/1000
    with one channel, as in the paper (CT images normalised to HU / 1000).

    Parameters: those of :class:`~tomoconsensus.tomo.split.ProjectionSplitFBP`; the geometry's CT dose
    protocol (``geom.protocol.mu_water_per_mm``) defines HU.
    """

    name = "ct"
    channels = 1
    units = "HU/1000"

    def to_units(self, mu) -> np.ndarray:
        """Attenuation (1/mm) -> HU/1000 with a channel axis, float32 NumPy."""
        hu = mu_to_hu(mu, self.geom.protocol.mu_water_per_mm)
        return (np.asarray(hu.cpu() if hasattr(hu, "cpu") else hu, dtype=np.float32) / 1000.0)[None]

    def reconstruct(self, half: tuple[str, np.ndarray]) -> np.ndarray:
        which, sino = half
        return self.to_units(self.half_operator(which)(sino))

    def estimate(self, sinogram: np.ndarray) -> np.ndarray:
        return self.to_units(self.fbp_all(sinogram))

    def split_and_reconstruct(self, sinogram: np.ndarray, rng: np.random.Generator | None = None) -> SplitImages:
        """x1, x2 and x_est of one sinogram (views, channels), filtering and backprojecting each view once.

        Same images as ``reconstruct`` of each half and ``estimate`` (to float32 round-off):
        the pre-weight and ramp filter act on each view alone, so the filtered sinogram of all
        views is split instead of the raw one, and ``x_est = (x1 + x2) / 2`` (:mod:`tomoconsensus.tomo.split`).
        """
        if not self.halves_average_to_all:
            odd, even = self.split(sinogram)
            return SplitImages(self.reconstruct(odd), self.reconstruct(even), self.estimate(sinogram))
        expected = (self.geom.n_views, self.geom.n_detectors)
        if tuple(np.shape(sinogram)) != expected:
            raise ValueError(f"sinogram: expected {expected} for geometry '{self.geom.name}', got {np.shape(sinogram)}")
        mu1, mu2 = (mu[0] for mu in self.halves_attenuation(np.asarray(sinogram)[None]))
        return SplitImages(self.to_units(mu1), self.to_units(mu2), self.to_units((mu1 + mu2) / 2))

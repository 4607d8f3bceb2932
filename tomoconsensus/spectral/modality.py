"""Photon-counting spectral CT as a :class:`~tomoconsensus.modality.Modality`.

A measurement is one slice of bin counts with its flat field (:class:`SpectralMeasurement`). Two
splits keep the halves' noise independent and zero-mean:

* ``"views"`` (default): odd / even views, the *same* views for every bin. Each half has all the
  counts of its views, so the log of the counts is as biased as in the full scan.
* ``"thinning"``: binomial thinning of every bin's counts, ``y1 ~ Binomial(y, 1/2)``,
  ``y2 = y - y1`` (exact independent Poisson halves of half the mean, flat field / 2 each); all views
  in each half. Halving the counts doubles the low-count bias of the log (about ``1 / (2 N)`` per ray),
  so choose it only where counts are high; it keeps every view in each half (no angular undersampling).

Each bin of a half is reconstructed by FBP (the tomography layer's projection split and FBP per half,
:class:`~tomoconsensus.tomo.split.ProjectionSplitFBP`, as CT; Hann window) of
``p_b = -ln(max(N_b, 1/2) / F_b)`` (zero counts clamped at half a count) and stored as bin "HU",
``1000 (mu_b / M_b,water - 1)`` / 1000, with ``M`` the bin attenuation matrix
(:mod:`tomoconsensus.spectral.physics`): one channel per bin, water 0 in every bin. ``x_est`` is the
reconstruction of all counts. Evaluation shows the mean of the bins in HU (a conventional-CT-like
image); the material images and virtual monoenergetic images are in :mod:`tomoconsensus.spectral.analysis`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from tomoconsensus.choices import MEAN_INPUT_X_EST
from tomoconsensus.counts import binomial_thin
from tomoconsensus.modality import SplitImages
from tomoconsensus.spectral.materials import MATERIALS
from tomoconsensus.spectral.physics import WaterPrecorrection, bin_attenuation_matrix
from tomoconsensus.spectral.spectrum import Spectrum
from tomoconsensus.tomo.geometry import FanBeamGeometry
from tomoconsensus.tomo.split import ProjectionSplitFBP

SPLITS = ("views", "thinning")


@dataclass
class SpectralMeasurement:
    """``counts`` (bins, views, channels) non-negative integers; ``flat`` (bins,) or (bins, channels) > 0."""

    counts: np.ndarray
    flat: np.ndarray

    def flat_per_ray(self) -> np.ndarray:
        flat = np.asarray(self.flat, float)
        return flat[:, None, None] if flat.ndim == 1 else flat[:, None, :]


class SpectralModality:
    """Fan-beam photon-counting CT with ``len(edges_kev) - 1`` energy bins (module docstring).

    Parameters
    ----------
    geom : FanBeamGeometry
    spectrum : Spectrum, used for the bin attenuation matrix (decomposition, units)
    edges_kev : (n_bins + 1,) increasing
    split : {"views", "thinning"}
    reference_water_mm : float, water path at which ``M`` linearises the bins (typical body path)
    device : torch device of the FBP
    """

    name = "spectral"
    units = "bin HU/1000: 1000 (mu_b / mu_water,b - 1) / 1000 per energy bin"

    def __init__(self, geom: FanBeamGeometry, spectrum: Spectrum, edges_kev: np.ndarray, split: str = "views",
                 reference_water_mm: float = 200.0, device: str = "cpu", materials=MATERIALS):
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        self.geom, self.spectrum, self.edges_kev, self.split_kind = geom, spectrum, np.asarray(edges_kev), split
        self.materials, self.reference_water_mm = tuple(materials), reference_water_mm
        self.matrix = bin_attenuation_matrix(self.materials, spectrum, self.edges_kev, reference_water_mm)
        self.channels = len(self.edges_kev) - 1
        self.split_fbp = ProjectionSplitFBP(geom, "hann", device)
        self.precorrection = WaterPrecorrection(spectrum, self.edges_kev, self.matrix[:, 0])

    def log_data(self, counts: np.ndarray, flat: np.ndarray) -> np.ndarray:
        """(bins, views, channels) water-precorrected line integrals of ``-ln(max(N, 1/2) / F)``."""
        return self.precorrection(-np.log(np.maximum(np.asarray(counts, float), 0.5) / flat))

    def _units(self, mu) -> np.ndarray:
        """(bins, H, W) effective attenuation (1/mm) -> stored bin HU/1000, float32."""
        mu = np.asarray(mu.cpu() if hasattr(mu, "cpu") else mu, float)
        return (mu / self.matrix[:, 0, None, None] - 1.0).astype(np.float32)

    def _fbp(self, op, log_data: np.ndarray) -> np.ndarray:
        return self._units(op(np.asarray(log_data, np.float32)))  # all bins as one batch

    def split(self, m: SpectralMeasurement, rng: np.random.Generator):
        flat = m.flat_per_ray()
        if self.split_kind == "views":
            odd, even = self.split_fbp.halves
            return ("odd", m.counts[:, odd], flat), ("even", m.counts[:, even], flat)
        y1, y2 = binomial_thin(m.counts, rng)
        return ("all", y1, flat / 2.0), ("all", y2, flat / 2.0)

    def reconstruct(self, half) -> np.ndarray:
        which, counts, flat = half
        return self._fbp(self.split_fbp.half_operator(which), self.log_data(counts, flat))

    def estimate(self, m: SpectralMeasurement) -> np.ndarray:
        return self._fbp(self.split_fbp.fbp_all, self.log_data(m.counts, m.flat_per_ray()))

    def split_and_reconstruct(self, m: SpectralMeasurement, rng: np.random.Generator) -> SplitImages:
        """x1, x2 and x_est of one slice; with the views split, each bin's log data are filtered once and
        ``x_est = (x1 + x2) / 2`` (as CT: the same images as :meth:`reconstruct` and :meth:`estimate`
        to float32 round-off, a third fewer backprojections)."""
        if self.split_kind != "views" or not self.split_fbp.halves_average_to_all:
            half1, half2 = self.split(m, rng)
            return SplitImages(self.reconstruct(half1), self.reconstruct(half2), self.estimate(m))
        mu1, mu2 = self.split_fbp.halves_attenuation(self.log_data(m.counts, m.flat_per_ray()))  # bins as the batch
        return SplitImages(self._units(mu1), self._units(mu2), self._units((mu1 + mu2) / 2))

    def bin_mu(self, image: np.ndarray) -> np.ndarray:
        """Stored channels (bins, H, W) -> effective attenuation per bin, 1/mm."""
        return (np.asarray(image, float) + 1.0) * self.matrix[:, 0, None, None]

    def attributes(self) -> dict[str, Any]:
        split = ("odd / even views, the same views in every bin" if self.split_kind == "views" else
                 "binomial thinning of every bin's counts, y1 ~ Binomial(y, 1/2), y2 = y - y1, flat / 2 each")
        mean_input = {"mean_input": MEAN_INPUT_X_EST} if self.split_kind == "thinning" else {}
        return {**self.split_fbp.attributes(), **mean_input, "split": split, "split_kind": self.split_kind,
                "bin_edges_kev": self.edges_kev.tolist(), "materials": list(self.materials),
                "bin_attenuation_matrix_per_mm": json.dumps(self.matrix.tolist()),
                "reference_water_mm": self.reference_water_mm, "spectrum_source": self.spectrum.source}

"""Odd/even projection split and the CT modality (FBP of each half, FBP of all views).

Views are numbered from 0: ``x1`` is reconstructed from the odd-indexed views (1, 3, 5, ...)
and ``x2`` from the even-indexed views (0, 2, 4, ...). The halves share no measurement, so their
noise is independent; each half is a complete, uniformly sampled 360 degree scan, so its FBP
is an unbiased reconstruction of the same object (with twice the angular step).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tomoconsensus.ct.fbp import FBP
from tomoconsensus.ct.noise import mu_to_hu
from tomoconsensus.geometry import FanBeamGeometry, geometry_to_toml


def odd_even_views(n_views: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the odd and even views of a scan with ``n_views`` views."""
    return np.arange(1, n_views, 2), np.arange(0, n_views, 2)


def split_odd_even(sinogram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a sinogram (views, channels) into its odd-view and even-view halves."""
    return sinogram[1::2], sinogram[0::2]


class CTModality:
    """Fan-beam CT as a :class:`~tomoconsensus.modality.Modality`.

    Measurements are sinograms of line integrals ``(views, channels)``; images are in HU/1000
    with one channel, as in the paper (CT images normalised to HU / 1000).

    Parameters
    ----------
    geom : FanBeamGeometry
        Scan geometry; ``geom.protocol.mu_water_per_mm`` defines HU.
    window : str
        FBP apodisation (``"hann"`` as in the paper).
    device : str
        Torch device for the FBP.
    """

    name = "ct"
    channels = 1
    units = "HU/1000"

    def __init__(self, geom: FanBeamGeometry, window: str = "hann", device: str = "cpu"):
        self.geom = geom
        self.window = window
        odd, even = odd_even_views(geom.n_views)
        self.fbp_odd = FBP(geom, odd, window, device)
        self.fbp_even = FBP(geom, even, window, device)
        self.fbp_all = FBP(geom, None, window, device)

    def to_units(self, mu) -> np.ndarray:
        """Attenuation (1/mm) -> HU/1000 with a channel axis, float32 NumPy."""
        hu = mu_to_hu(mu, self.geom.protocol.mu_water_per_mm)
        return (np.asarray(hu.cpu() if hasattr(hu, "cpu") else hu, dtype=np.float32) / 1000.0)[None]

    def split(self, sinogram: np.ndarray, rng: np.random.Generator | None = None):
        odd, even = split_odd_even(sinogram)
        return ("odd", odd), ("even", even)

    def reconstruct(self, half: tuple[str, np.ndarray]) -> np.ndarray:
        which, sino = half
        op = self.fbp_odd if which == "odd" else self.fbp_even
        return self.to_units(op(sino))

    def estimate(self, sinogram: np.ndarray) -> np.ndarray:
        return self.to_units(self.fbp_all(sinogram))

    def attributes(self) -> dict[str, Any]:
        return {"geometry_toml": geometry_to_toml(self.geom), "geometry_name": self.geom.name,
                "fbp_window": self.window, "split": "x1 = odd views (1,3,5,...), x2 = even views (0,2,4,...)"}

"""The paper's "TV" baseline for CT: Chambolle-Pock TV (:func:`tomoconsensus.tomo.tv.tv_solve`) in water units.

The image is solved for in units of the water attenuation of the geometry's dose protocol
(``u = mu / mu_water``), so the weight ``lam`` of :class:`~tomoconsensus.tomo.tv.TVConfig` is independent of
the pixel size, the view count and the effective energy.
"""

from __future__ import annotations

import numpy as np

from tomoconsensus.tomo.geometry import FanBeamGeometry
from tomoconsensus.tomo.tv import TVConfig, tv_solve


def tv_reconstruct(sinogram: np.ndarray, geom: FanBeamGeometry, config: TVConfig | None = None,
                   x0: np.ndarray | None = None, a_norm: float | None = None) -> np.ndarray:
    """TV-regularised reconstruction of a sinogram (views, channels) -> image (N, N) in 1/mm.

    ``config`` defaults to ``TVConfig()``. Starts from ``x0`` (default: the Hann FBP); ``a_norm`` is
    ``||A||`` where already known (default: power iteration, ``config.power_iterations``).
    ``geom.protocol.mu_water_per_mm`` sets the unit.
    """
    return tv_solve(sinogram, geom, geom.protocol.mu_water_per_mm, config or TVConfig(), x0, a_norm)

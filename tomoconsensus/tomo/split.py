"""Projection split and FBP per half: what CT and spectral CT share (each a modality over it).

Views are numbered from 0: by default ``x1`` is reconstructed from the odd-indexed views (1, 3, 5, ...)
and ``x2`` from the even-indexed views (0, 2, 4, ...); raw helical scans may use another partition
of the views (CT's rebinning, ``split_views``). The halves share no measurement, so their
noise is independent; each half is a complete, uniformly sampled 360 degree scan, so its FBP
is an unbiased reconstruction of the same object (with twice the angular step).

The FBP is linear and each view of the full scan carries half the angular weight it has in its
half (``w_all[v] = w_half[v] / 2`` for an even number of equally spaced views), so

    x_est = FBP_all(y) = (FBP_odd(y_odd) + FBP_even(y_even)) / 2 = (x1 + x2) / 2

exactly; preparation therefore filters the sinogram once and backprojects each view once
(:meth:`ProjectionSplitFBP.halves_attenuation`). Geometries where the weights do not halve (odd view
counts, irregular angles) get their own FBP of all views.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tomoconsensus.tomo.curved import FanViews, fbp_operator
from tomoconsensus.tomo.fbp import FBP
from tomoconsensus.tomo.geometry import FanBeamGeometry, geometry_to_toml


def odd_even_views(n_views: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the odd and even views of a scan with ``n_views`` views."""
    return np.arange(1, n_views, 2), np.arange(0, n_views, 2)


def split_odd_even(sinogram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a sinogram (views, channels) into its odd-view and even-view halves."""
    return sinogram[1::2], sinogram[0::2]


def halves_average_to_all(fbp_odd: FBP, fbp_even: FBP, fbp_all: FBP) -> bool:
    """True when every view's weight in ``fbp_all`` is half its weight in its half (so x_est = (x1+x2)/2).

    The operators must share geometry and window; the weights are compared in float64 to 1e-12.
    """
    w_all = np.zeros(fbp_all.geom.n_views)
    w_all[fbp_all.views] = fbp_all.weights_f64
    return all(np.allclose(w_all[op.views], op.weights_f64 / 2, rtol=1e-12, atol=0) for op in (fbp_odd, fbp_even))


class ProjectionSplitFBP:
    """Two view halves of a fan-beam scan and the FBP operators of each half and of all views.

    Parameters
    ----------
    geom : FanBeamGeometry
        Scan geometry (flat or curved detector).
    window : str
        FBP apodisation (``"hann"`` as in the paper).
    device : str
        Torch device for the FBP.
    sources : FanViews, optional
        Per-view source positions (rebinned raw data, flying focal spot); curved geometries only.
    halves : (ndarray, ndarray), optional
        View indices of x1 and x2 (default: odd and even views).
    split_description : str, optional
        How the halves were chosen (stored in the prepared file).
    """

    def __init__(self, geom: FanBeamGeometry, window: str = "hann", device: str = "cpu",
                 sources: FanViews | None = None, halves: tuple[np.ndarray, np.ndarray] | None = None,
                 split_description: str | None = None):
        self.geom = geom
        self.window = window
        self.halves = odd_even_views(geom.n_views) if halves is None else halves
        self.split_description = split_description or "x1 = odd views (1,3,5,...), x2 = even views (0,2,4,...)"
        self.fbp_odd = fbp_operator(geom, self.halves[0], window, device, sources)
        self.fbp_even = fbp_operator(geom, self.halves[1], window, device, sources)
        self.fbp_all = fbp_operator(geom, None, window, device, sources)
        self.odd, self.even = self.halves
        flat = all(isinstance(op, FBP) for op in (self.fbp_odd, self.fbp_even, self.fbp_all))
        self.halves_average_to_all = flat and halves_average_to_all(self.fbp_odd, self.fbp_even, self.fbp_all)

    def split(self, sinogram: np.ndarray, rng: np.random.Generator | None = None):
        """The two halves (fixed per scan, so ``rng`` is unused): ("odd", x1 views), ("even", x2 views)."""
        return ("odd", sinogram[self.halves[0]]), ("even", sinogram[self.halves[1]])

    def half_operator(self, which: str):
        """The FBP of the views of half ``which`` (``"odd"``: x1, ``"even"``: x2) or of all views (``"all"``)."""
        return {"odd": self.fbp_odd, "even": self.fbp_even, "all": self.fbp_all}[which]

    def halves_attenuation(self, sinograms) -> tuple[torch.Tensor, torch.Tensor]:
        """FBP of the odd and of the even views of a batch of sinograms (B, views, channels), each view
        filtered once: two (B, N, N) attenuation images (1/mm). Needs ``halves_average_to_all``, under
        which ``(mu1 + mu2) / 2`` is the FBP of all views."""
        sino = torch.as_tensor(sinograms, dtype=torch.float32, device=self.fbp_all.device)
        filtered = self.fbp_all.filter(sino)
        shape = (sino.shape[0], self.geom.image_size, self.geom.image_size)
        return (self.fbp_odd.backproject(filtered[:, self.odd]).reshape(shape),
                self.fbp_even.backproject(filtered[:, self.even]).reshape(shape))

    def attributes(self) -> dict[str, Any]:
        return {"geometry_toml": geometry_to_toml(self.geom), "geometry_name": self.geom.name,
                "fbp_window": self.window, "split": self.split_description, "split_kind": "views"}

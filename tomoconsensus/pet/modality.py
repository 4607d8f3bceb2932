"""PET as a :class:`~tomoconsensus.modality.Modality`: binomial thinning (or time frames), corrected FBP (or OSEM).

A measurement is one 2-D prompt sinogram with its corrections (:class:`PETMeasurement`). The split
thins the raw prompts binomially (:mod:`tomoconsensus.pet.thinning`): the halves are independent
Poisson data with half the mean, sharing ``m`` and each carrying ``a / 2``. Each half is
reconstructed with the factor 2 that makes it estimate the full-count image, so ``x1``, ``x2`` and
``x_est`` (the reconstruction of all prompts) share the activity units of the prompt file
(SUV for the simulator). Images have one channel.

With :class:`~tomoconsensus.pet.frames.TimeFrames` the halves are the events of even and odd time
frames instead: half ``k`` has the mean share ``w_k``, carries ``a w_k`` and is scaled ``1 / w_k``
(exact for a static tracer; caveat in :mod:`tomoconsensus.pet.frames`).

The class also tells evaluation and reports how to show PET (table rows, display window,
baseline names, metrics): see :func:`tomoconsensus.presenters.presenter`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from tomoconsensus.pet.frames import TimeFrames
from tomoconsensus.pet.presentation import PETPresentation
from tomoconsensus.pet.recon import OSEM, CorrectedFBP
from tomoconsensus.pet.thinning import binomial_thin
from tomoconsensus.tomo.geometry import ParallelBeamGeometry, geometry_to_toml

RECONS = ("fbp", "osem")


@dataclass
class PETMeasurement:
    """One slice (views, bins): raw prompts (int64), multiplicative ``m`` (> 0), additive expectation
    ``a`` (>= 0) and, optionally, a measured delayed-window sinogram (int64 counts, randoms) that is
    subtracted like ``a`` and thinned like the prompts. ``frames``: the prompts of the two halves
    assigned event by event (even and odd time frames, or a random assignment of list-mode events),
    each (views, bins), summing to ``prompts``; ``delayed_frames`` likewise for ``delayed``."""

    prompts: np.ndarray
    multiplicative: np.ndarray
    additive: np.ndarray
    delayed: np.ndarray | None = None
    frames: tuple[np.ndarray, np.ndarray] | None = None
    delayed_frames: tuple[np.ndarray, np.ndarray] | None = None

    def total_additive(self) -> np.ndarray:
        """``a`` plus the delayed counts: what is subtracted from all prompts."""
        return self.additive if self.delayed is None else self.additive + self.delayed


class PETHalf(NamedTuple):
    """One half: counts (views, bins), ``m``, the half's additive term, and the scale that makes its
    reconstruction estimate the full-count image (2 for thinning, ``1 / w_k`` for time frames)."""

    counts: np.ndarray
    multiplicative: np.ndarray
    additive: np.ndarray
    scale: float


class PETModality(PETPresentation):
    """2-D PET on a parallel geometry; ``recon`` is ``"fbp"`` (linear, default) or ``"osem"``.

    Parameters
    ----------
    geom : ParallelBeamGeometry
        Views, bins and the reconstruction grid (:func:`tomoconsensus.pet.recon.pet_geometry`).
    units : str
        Activity units fixed by the multiplicative factor (stored in prepared files).
    recon : {"fbp", "osem"}
    window : str
        FBP apodisation.
    osem_iterations, osem_subsets : int
    frames : TimeFrames or None
        None: binomial thinning (seeded); else the time-frame split of each measurement's ``frames``.
    """

    name = "pet"
    channels = 1

    def __init__(self, geom: ParallelBeamGeometry, units: str, recon: str = "fbp", window: str = "hann",
                 osem_iterations: int = 4, osem_subsets: int = 8, frames: TimeFrames | None = None):
        if recon not in RECONS:
            raise ValueError(f"recon: expected one of {RECONS}, got {recon!r}")
        self.geom, self.units, self.recon, self.window, self.frames = geom, units, recon, window, frames
        self.osem_iterations, self.osem_subsets = osem_iterations, osem_subsets
        self.op = CorrectedFBP(geom, window) if recon == "fbp" else OSEM(geom, osem_iterations, osem_subsets)

    def split(self, m: PETMeasurement, rng: np.random.Generator) -> tuple[PETHalf, PETHalf]:
        if self.frames is not None or m.frames is not None:
            return self._split_frames(m)
        y1, y2 = binomial_thin(m.prompts, rng)
        a1 = a2 = m.additive / 2.0  # an expectation: half in each half
        if m.delayed is not None:  # a count: thinned, each half subtracts its own delayeds
            d1, d2 = binomial_thin(m.delayed, rng)
            a1, a2 = a1 + d1, a2 + d2
        return PETHalf(y1, m.multiplicative, a1, 2.0), PETHalf(y2, m.multiplicative, a2, 2.0)

    def _split_frames(self, m: PETMeasurement) -> tuple[PETHalf, PETHalf]:
        """Halves assigned event by event: E[y_k] = w_k (m A x + a), w_k of the time frames (1/2 for a random
        assignment); each half subtracts its own delayeds (a histogram's delayeds cannot be split by time)."""
        if m.frames is None or (m.delayed is not None and m.delayed_frames is None):
            raise ValueError("an event-level split needs the halves' prompts (and delayeds, where there are any)")
        weights = self.frames.weights() if self.frames is not None else (0.5, 0.5)
        delayed = m.delayed_frames if m.delayed_frames is not None else (0.0, 0.0)
        return tuple(PETHalf(y, m.multiplicative, m.additive * w + d, 1.0 / w)
                     for y, d, w in zip(m.frames, delayed, weights, strict=True))

    def reconstruct(self, half: PETHalf) -> np.ndarray:
        return self.op(half.counts, half.multiplicative, half.additive, scale=half.scale)[None]

    def estimate(self, m: PETMeasurement) -> np.ndarray:
        return self.op(m.prompts, m.multiplicative, m.total_additive())[None]

    @staticmethod
    def measurement_arrays(m: PETMeasurement) -> dict[str, np.ndarray]:
        """The raw counts of a slice kept with ``--keep-measurement`` (list-mode input, halves assigned by
        event): each half's prompts and delayeds and all delayeds, (views, bins) int32."""
        if m.frames is None:
            return {}
        arrays = {"prompts_half1": m.frames[0], "prompts_half2": m.frames[1]}
        if m.delayed is not None:
            arrays["delayed"] = m.delayed
            if m.delayed_frames is not None:
                arrays.update(delayed_half1=m.delayed_frames[0], delayed_half2=m.delayed_frames[1])
        return {k: np.asarray(v, np.int32) for k, v in arrays.items()}

    def attributes(self) -> dict[str, Any]:
        recon = (f"corrected FBP ({self.window}), x = FBP((y - a) / m)" if self.recon == "fbp" else
                 f"OSEM {self.osem_iterations} iterations x {self.osem_subsets} subsets (non-negative, biased "
                 "in cold regions at low counts; docs/pet.md)")
        split = ("binomial thinning of the raw prompts, y1 ~ Binomial(y, 1/2), y2 = y - y1; m shared, a/2 per half; "
                 "halves scaled x2") if self.frames is None else self.frames.describe()
        attrs = {"geometry_toml": geometry_to_toml(self.geom), "geometry_name": self.geom.name, "recon": self.recon,
                 "reconstruction": recon, "split": split}
        if self.frames is not None:
            attrs.update(split_frame_s=self.frames.frame_s, split_weights=np.asarray(self.frames.weights()))
            if self.frames.half_life_s is not None:
                attrs["split_half_life_s"] = self.frames.half_life_s
        return attrs

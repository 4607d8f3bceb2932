"""CT slices for preparation: simulated low dose from clean images, or measured sinograms."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tomoconsensus.ct.io import ImageStack, SinogramStack
from tomoconsensus.ct.projector import AstraProjector
from tomoconsensus.ct.simulate import simulate_sinogram, to_geometry_grid
from tomoconsensus.geometry import FanBeamGeometry
from tomoconsensus.modality import Slice


def slice_rngs(seed: int, n: int) -> list[np.random.Generator]:
    """Independent, reproducible generators, one per slice (independent of processing order)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def simulated_slices(stack: ImageStack, geom: FanBeamGeometry, dose_fraction: float,
                     seed: int) -> Iterator[Slice]:
    """Low-dose sinograms simulated from clean images; the reference is the clean image in HU/1000."""
    rngs = slice_rngs(seed, len(stack.hu))
    with AstraProjector(geom, kind="strip") as proj:
        for i, rng in enumerate(rngs):
            hu = to_geometry_grid(stack.hu[i], float(stack.pixel_spacing_mm[i]), geom)
            sino = simulate_sinogram(hu, geom, dose_fraction, rng, proj)
            yield Slice(stack.slice_ids[i], stack.patient_ids[i], sino, (hu / 1000.0)[None])


def measured_slices(stack: SinogramStack) -> Iterator[Slice]:
    """Slices from measured sinograms, with the reference (HU -> HU/1000) where the file has one."""
    for i, sino in enumerate(stack.sinograms):
        ref = None if stack.reference_hu is None else (stack.reference_hu[i] / 1000.0)[None].astype(np.float32)
        yield Slice(stack.slice_ids[i], stack.slice_ids[i].split("_")[0], sino, ref)

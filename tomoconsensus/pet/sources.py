"""PET slices for preparation, from a validated prompt stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tomoconsensus.errors import GeometryMismatchError
from tomoconsensus.modality import Slice
from tomoconsensus.pet.io import PromptStack
from tomoconsensus.pet.modality import PETMeasurement
from tomoconsensus.tomo.geometry import ParallelBeamGeometry


def check_reference_grid(stack: PromptStack, geom: ParallelBeamGeometry, source: str | Path) -> None:
    """A stored reference must lie on the reconstruction grid (--image-size)."""
    n = geom.image_size
    if stack.reference is not None and stack.reference.shape[1:] != (n, n):
        raise GeometryMismatchError(source, "reference", f"images of {n} x {n} pixels (--image-size {n})",
                                    stack.reference.shape)


def prompt_slices(stack: PromptStack, frames: tuple[np.ndarray, np.ndarray] | None = None,
                  delayed_frames: tuple[np.ndarray, np.ndarray] | None = None) -> Iterator[Slice]:
    """One :class:`~tomoconsensus.modality.Slice` per sinogram; reference with a channel axis.

    ``frames``: the prompts of the two halves assigned event by event (time frames or a random
    assignment), each (slices, views, bins), or None; ``delayed_frames`` likewise for the delayeds.
    """
    def pick(pair, i):
        return None if pair is None else (pair[0][i], pair[1][i])

    for i in range(len(stack.prompts)):
        ref = None if stack.reference is None else stack.reference[i][None]
        yield Slice(stack.slice_ids[i], stack.patient_ids[i],
                    PETMeasurement(stack.prompts[i], stack.multiplicative[i], stack.additive[i],
                                   None if stack.delayed is None else stack.delayed[i], pick(frames, i),
                                   pick(delayed_frames, i)), ref)

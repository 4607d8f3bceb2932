"""Spectral slices for preparation: the slices of a count file (:mod:`tomoconsensus.spectral.io`)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tomoconsensus.errors import InputError
from tomoconsensus.modality import Slice
from tomoconsensus.spectral.io import CountStack
from tomoconsensus.spectral.modality import SpectralMeasurement
from tomoconsensus.tomo.geometry import FanBeamGeometry


def check_stack(stack: CountStack, geom: FanBeamGeometry, source) -> None:
    """The counts must have the geometry's views and channels, and references its grid."""
    if not isinstance(geom, FanBeamGeometry):
        raise InputError(source, "--geometry", "a fan-beam geometry", type(geom).__name__)
    _, _, views, channels = stack.counts.shape
    if (views, channels) != (geom.n_views, geom.n_detectors):
        raise InputError(source, "counts", f"{geom.n_views} views x {geom.n_detectors} channels of geometry "
                         f"'{geom.name}'", (views, channels))
    if stack.reference is not None and stack.reference.shape[2:] != (geom.image_size, geom.image_size):
        raise InputError(source, "reference", f"the geometry's {geom.image_size}^2 grid", stack.reference.shape[2:])


def count_slices(stack: CountStack) -> Iterator[Slice]:
    """One :class:`Slice` per slice of the count file (reference where the file has one)."""
    for i, counts in enumerate(stack.counts):
        reference = None if stack.reference is None else np.asarray(stack.reference[i])
        yield Slice(stack.slice_ids[i], stack.patient_ids[i], SpectralMeasurement(counts, stack.flat), reference)

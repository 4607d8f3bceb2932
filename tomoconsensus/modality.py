"""The one protocol a modality implements to be trained with tomoconsensus.

A modality turns one raw measurement (a sinogram, multi-coil k-space, list-mode PET data ...)
into the three images the consensus method needs:

* ``x1`` and ``x2``: *linear* reconstructions of two halves of the measurement whose noise is
  independent and zero-mean (so that Theorem 1 of Wu et al. 2019 applies);
* ``x_est``: an estimate of the image from all the data, used by the consistency term beta_r.

Everything downstream (prepared HDF5 files, patch sampling, training, denoising, evaluation)
sees only these images, with a channel axis: 1 channel for CT, 2 (real, imaginary) for MR.
See ``docs/adding-a-modality.md`` and ``examples/toy_modality/`` (a plugin package) for a worked example.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np


class Slice(NamedTuple):
    """One measured slice as a modality's reader or simulator yields it.

    Attributes
    ----------
    slice_id, patient_id : str
        Identifiers kept through preparation, training, denoising and evaluation.
    measurement : Any
        What :meth:`Modality.split` and :meth:`Modality.estimate` take (a sinogram, k-space ...).
    reference : ndarray or None
        Clean image ``(channels, H, W)`` in the modality's units, where one exists.
    """

    slice_id: str
    patient_id: str
    measurement: Any
    reference: np.ndarray | None


class SplitImages(NamedTuple):
    """Reconstructions of one slice, each ``(channels, H, W)`` float32 in the modality's units."""

    x1: np.ndarray
    x2: np.ndarray
    x_est: np.ndarray


@runtime_checkable
class Modality(Protocol):
    """What a modality provides. ``Measurement`` is whatever its reader returns for one slice."""

    #: Short name stored in prepared files (``"ct"``, ``"mr"``).
    name: str
    #: Image channels fed to the network.
    channels: int
    #: Units of the images, stored in prepared files (``"HU/1000"``).
    units: str

    def split(self, measurement: Any, rng: np.random.Generator) -> tuple[Any, Any]:
        """Split a measurement into two halves with independent, zero-mean noise."""

    def reconstruct(self, half: Any) -> np.ndarray:
        """Linear reconstruction of one half, ``(channels, H, W)``, unbiased for the full image."""

    def estimate(self, measurement: Any) -> np.ndarray:
        """x_est from the whole measurement, ``(channels, H, W)``."""

    def attributes(self) -> dict[str, Any]:
        """Acquisition parameters written into the prepared file (geometry, dose, ...)."""


def split_and_reconstruct(modality: Modality, measurement: Any, rng: np.random.Generator) -> SplitImages:
    """Apply a modality's split, half reconstructions and estimate to one measurement.

    A modality may provide its own ``split_and_reconstruct(measurement, rng) -> SplitImages`` that
    returns the same images faster (CT filters once and gets x_est from the halves); it is used
    when present.
    """
    joint = getattr(modality, "split_and_reconstruct", None)
    if joint is not None:
        return joint(measurement, rng)
    half1, half2 = modality.split(measurement, rng)
    return SplitImages(modality.reconstruct(half1), modality.reconstruct(half2), modality.estimate(measurement))

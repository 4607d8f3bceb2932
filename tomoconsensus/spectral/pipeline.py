"""Spectral CT preparation: count stacks (read or simulated) -> prepared files with one channel per bin.

``prepare spectral`` (counts read from a file) and the spectral demo (counts simulated from the
embedded CT anatomy) both go through :func:`spectral_modality` and :func:`write_spectral`.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np

from tomoconsensus.data.prepared import PrepareSummary, write_prepared
from tomoconsensus.devices import torch_device
from tomoconsensus.spectral.io import CountStack
from tomoconsensus.spectral.modality import SpectralModality
from tomoconsensus.spectral.sources import check_stack, count_slices
from tomoconsensus.spectral.spectrum import Spectrum, load_spectrum
from tomoconsensus.tomo.geometry import load_fan_beam


def spectral_modality(geometry: str | Path, edges_kev, spectrum: Spectrum | str | Path | None = None,
                      split: str = "views", reference_water_mm: float = 200.0,
                      device: str = "auto") -> SpectralModality:
    """The modality for a geometry name/TOML, bin edges (keV) and a spectrum (object, CSV path or the shipped one)."""
    if not isinstance(spectrum, Spectrum):
        spectrum = load_spectrum(spectrum)
    return SpectralModality(load_fan_beam(geometry), spectrum, np.asarray(edges_kev, float), split,
                            reference_water_mm, torch_device(device))


def write_spectral(out: str | Path, modality: SpectralModality, stack: CountStack, seed: int, source: str | Path,
                   max_slices: int | None = None, progress: bool = True) -> PrepareSummary:
    """Split, reconstruct (FBP per bin) and write the slices of ``stack`` to the prepared file ``out``.

    ``seed`` drives the thinning split (the views split has no randomness); ``source`` is recorded
    as the attribute ``source``; ``max_slices`` writes only the first slices.
    """
    check_stack(stack, modality.geom, source)
    n = len(stack.counts) if max_slices is None else min(max_slices, len(stack.counts))
    attrs = {"source": str(source), "air_counts_per_bin": np.asarray(stack.flat, float).reshape(
        len(stack.edges_kev) - 1, -1).mean(1).tolist()}
    return write_prepared(out, modality, islice(count_slices(stack), n), n, seed, attrs, progress=progress)

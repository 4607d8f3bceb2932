"""CT preparation: the modality on a device, simulated or measured slices, the optional TV baseline.

``prepare ct --images/--sinograms`` and the CT demo both go through :func:`ct_modality`, a slice
source (:func:`simulated_source` or :func:`measured_source`) and :func:`write_ct`. Raw helical
projections have their own source (:func:`tomoconsensus.ct.raw.projection_source`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from tomoconsensus.ct.countsplit import CountSinogram, CTThinningModality, full_line_integrals
from tomoconsensus.ct.io import ImageStack, SinogramStack
from tomoconsensus.ct.modality import CTModality
from tomoconsensus.ct.protocol import CTDoseProtocol
from tomoconsensus.ct.sources import measured_slices, simulated_slices
from tomoconsensus.ct.tv_baseline import tv_reconstruct
from tomoconsensus.ct.tv_tuning import DEFAULT_GRID, TVTuning, tune_tv_lambda
from tomoconsensus.data.prepared import PrepareSummary, write_prepared, write_prepared_slices
from tomoconsensus.devices import torch_device
from tomoconsensus.errors import InputError
from tomoconsensus.modality import Slice
from tomoconsensus.prepare_jobs import SliceWork, prepare_in_processes
from tomoconsensus.tomo.geometry import FanBeamGeometry, load_fan_beam
from tomoconsensus.tomo.tv import TVConfig


@dataclass
class SliceSource:
    """Slices to prepare (a generator is fine), how many, and how they were obtained (file attributes).

    ``make(indices=...)``, where set, yields the slices of any indices in a fresh process (a picklable
    recipe for ``--jobs``: :mod:`tomoconsensus.prepare_jobs`).
    """

    slices: Iterable[Slice]
    n_slices: int
    attrs: dict[str, Any]
    make: Callable[..., Iterable[Slice]] | None = None


def fan_beam_geometry(name: str | Path) -> FanBeamGeometry:
    """A shipped geometry name or TOML path; InputError unless it is a fan-beam geometry."""
    return load_fan_beam(name, CTDoseProtocol)


#: CT splits of simulated or measured sinograms (``prepare ct --split``; raw projections have their own).
CT_SPLITS = ("views", "thinning")


def ct_modality(geom: FanBeamGeometry, device: str = "auto", split: str = "views") -> CTModality:
    """Hann FBP on the torch ``device`` (auto, cpu, cuda, cuda:N) with the ``split``: ``views`` (odd/even
    views) or ``thinning`` (the counts of every reading, :mod:`tomoconsensus.ct.countsplit`)."""
    if split not in CT_SPLITS:
        raise InputError("--split", "split", f"one of {', '.join(CT_SPLITS)}", split)
    kind = CTThinningModality if split == "thinning" else CTModality
    return kind(geom, device=torch_device(device))


def _count(total: int, max_slices: int | None, source: str | Path) -> int:
    n = total if max_slices is None else min(max_slices, total)
    if n == 0:
        raise InputError(source, "slices", "at least one slice", 0)
    return n


def simulated_source(stack: ImageStack, geom: FanBeamGeometry, dose_fraction: float, seed: int,
                     source: str | Path, reference: str = "noiseless-fbp",
                     max_slices: int | None = None, counts: bool = False) -> SliceSource:
    """Low-dose sinograms simulated from clean images (HU) at ``dose_fraction`` of the geometry's dose.

    Parameters
    ----------
    stack : ImageStack
        Clean images, (slices, H, W) in HU with their pixel spacing in mm.
    seed : int
        Seed of the simulated noise (slice ``i`` draws from its own stream).
    source : str or Path
        Where the images came from (file attribute ``source``; names the input in errors).
    reference : str
        ``noiseless-fbp``, ``full-dose-fbp`` or ``image`` (:data:`tomoconsensus.ct.sources.REFERENCES`).
    max_slices : int, optional
        Only the first slices.
    counts : bool
        Yield the readings before the log (:class:`~tomoconsensus.ct.countsplit.CountSinogram`), as the
        thinning split needs; the same seed gives the same readings and the same x_est.
    """
    n = _count(len(stack.hu), max_slices, source)
    attrs = {"source": str(source), "source_kind": "simulated from clean images", "reference_kind": reference,
             "dose_fraction": dose_fraction, "incident_photons_full_dose": geom.protocol.incident_photons,
             "electronic_noise_std": geom.protocol.electronic_noise_std}
    return SliceSource(islice(simulated_slices(stack, geom, dose_fraction, seed, reference, counts), n), n, attrs,
                       partial(simulated_slices, stack, geom, dose_fraction, seed, reference, counts))


def measured_source(stack: SinogramStack, source: str | Path, max_slices: int | None = None) -> SliceSource:
    """Measured line-integral sinograms (views, channels), with their reference where the file has one."""
    n = _count(len(stack.sinograms), max_slices, source)
    attrs = {"source": str(source), "source_kind": "measured sinograms"}
    return SliceSource(islice(measured_slices(stack), n), n, attrs, partial(measured_slices, stack))


def write_ct(out: str | Path, modality: CTModality, source: SliceSource, seed: int, tv: TVConfig | None = None,
             progress: bool = True, jobs: int = 1, device: str = "auto",
             tv_tuning: TVTuning | None = None) -> PrepareSummary:
    """Split, reconstruct and write ``source`` to the prepared file ``out``.

    Parameters
    ----------
    modality : CTModality
        From :func:`ct_modality`; one modality can write several files.
    seed : int
        Recorded split seed (CT's odd/even split itself is deterministic).
    tv : TVConfig, optional
        Also store the TV reconstruction of each sinogram as ``/baselines/tv`` (HU/1000), with the
        attributes ``tv_lam``, ``tv_iter`` and ``tv_lam_choice`` ("given" unless ``tv_tuning``).
    tv_tuning : TVTuning, optional
        How ``tv.lam`` was chosen (:func:`tune_tv`): recorded as ``tv_lam_choice`` and ``tv_lam_grid``.
    jobs, device : int, str
        Processes that split and reconstruct (``jobs > 1`` needs ``source.make``; the file is the one
        ``jobs = 1`` writes) and the torch device each builds its modality on.
    """
    attrs = dict(source.attrs)
    if tv is not None:
        attrs.update(tv_lam=tv.lam, tv_iter=tv.n_iter, tv_lam_choice="given")
        if tv_tuning is not None:
            attrs.update(tv_tuning.attributes())
    if jobs > 1 and source.make is not None:
        import torch

        split = "thinning" if isinstance(modality, CTThinningModality) else "views"
        work = SliceWork(source.make, partial(ct_modality, modality.geom, device, split),
                         partial(_tv_baselines, tv) if tv is not None else None,
                         threads=max(1, torch.get_num_threads() // jobs))
        results = prepare_in_processes(work, source.n_slices, jobs, fork=torch_device(device).type == "cpu")
        return write_prepared_slices(out, modality, results, source.n_slices, seed, attrs, progress)
    baselines = _tv_baselines(tv, modality) if tv is not None else {}
    return write_prepared(out, modality, source.slices, source.n_slices, seed, attrs, baselines, progress)


def line_integrals(measurement) -> object:
    """A slice's sinogram of line integrals, whether it comes as one or as readings before the log."""
    return full_line_integrals(measurement) if isinstance(measurement, CountSinogram) else measurement


def _tv_baselines(tv: TVConfig, modality: CTModality) -> dict[str, Callable]:
    """``{"tv": sinogram or readings -> TV reconstruction in HU/1000}``."""
    return {"tv": lambda m: modality.to_units(tv_reconstruct(line_integrals(m), modality.geom, tv))}


def tune_tv(source: SliceSource, geom: FanBeamGeometry, config: TVConfig, max_slices: int,
            grid=DEFAULT_GRID) -> TVTuning:
    """The TV weight chosen on the first ``max_slices`` validation slices of ``source`` against their
    reference (:mod:`tomoconsensus.ct.tv_tuning`); InputError where the slices have no reference."""
    pairs = []
    for item in islice(source.slices, max_slices):
        if item.reference is None:
            raise InputError(source.attrs["source"], "reference", "validation slices with a clean reference "
                             "to choose the TV weight on", "a slice without one")
        pairs.append((line_integrals(item.measurement), 1000.0 * np.asarray(item.reference)[0]))
    return tune_tv_lambda(pairs, geom, grid, config)


def tv_choice(lam: float | str, n_iter: int, geom: FanBeamGeometry, validation: SliceSource | None,
              max_slices: int) -> tuple[TVConfig, TVTuning | None]:
    """The TV baseline's configuration for ``prepare ct --tv``: the weight ``lam`` as given, or with
    ``lam == "auto"`` the one chosen on the ``validation`` patient's reference (:func:`tune_tv`)."""
    config = TVConfig(n_iter=n_iter)
    if lam != "auto":
        if validation is not None:
            raise InputError("--tv-val", "tv-val", "--tv-val only with --tv-lam auto", "a fixed --tv-lam")
        return replace(config, lam=float(lam)), None
    if validation is None:
        raise InputError("--tv-lam", "tv-lam", "--tv-val VALIDATION with --tv-lam auto (the validation patient's "
                         "reference chooses the weight)", "auto without --tv-val")
    tuning = tune_tv(validation, geom, config, max_slices)
    return replace(config, lam=tuning.lam), tuning

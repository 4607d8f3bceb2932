"""PET preparation: prompt stacks (read or simulated) -> split halves, corrected FBP (or OSEM).

``prepare pet`` (prompts read from a file) and the PET demo (prompts simulated from the embedded CT
anatomy) both go through :func:`pet_modality` and :func:`write_pet`. The split is binomial thinning
(default) or, for list-mode files with event times, alternating time frames (:func:`time_frames`).
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

from tomoconsensus.atomic import check_output_file
from tomoconsensus.data.prepared import PrepareSummary, write_prepared
from tomoconsensus.errors import InputError
from tomoconsensus.pet.frames import TimeFrames
from tomoconsensus.pet.interfile import read_listmode_header
from tomoconsensus.pet.io import PromptStack, read_prompts
from tomoconsensus.pet.mmr import MMRAcquisition, read_mmr_listmode
from tomoconsensus.pet.modality import PETModality
from tomoconsensus.pet.recon import pet_geometry
from tomoconsensus.pet.sources import check_reference_grid, prompt_slices


def time_frames(stack: PromptStack, frame_s: float, half_life_s: float | None, source: str | Path) -> TimeFrames:
    """The time-frame split of a list-mode stack with event times; refuses what cannot be split by time."""
    if stack.listmode is None:
        raise InputError(source, "listmode_time_s", "list-mode events with times ('listmode_bin', "
                         "'listmode_time_s', attribute 'duration_s') for --split time-frames", "missing")
    if stack.delayed is not None:
        raise InputError(source, "delayed", "no delayed-window sinogram with --split time-frames (a histogram "
                         "cannot be split by time; put its expectation into 'additive' or use --split thinning)",
                         "a 'delayed' sinogram")
    return TimeFrames(frame_s, stack.listmode.duration_s, half_life_s)


def read_pet_input(prompts: Path | None, listmode: Path | None, split: str, frame_s: float | None,
                   half_life_s: float | None, seed: int, out: Path,
                   overwrite: bool) -> tuple[PromptStack, TimeFrames | None, MMRAcquisition | None]:
    """``prepare pet``'s input: a prompt file (``prompts``) or an mMR list-mode header (``listmode``), read after
    checking that ``out`` is none of the inputs (the list-mode data file included).

    Returns the stack, the time-frame split (None: thinning) and, for list-mode, the acquisition.
    """
    if listmode is not None:
        check_output_file(out, [listmode, read_listmode_header(listmode).data_file], overwrite)
        acquisition = read_mmr_listmode(listmode, split, frame_s, half_life_s, seed)
        return acquisition.stack, acquisition.frames, acquisition
    check_output_file(out, [prompts], overwrite)
    stack = read_prompts(prompts)
    return stack, time_frames(stack, frame_s, half_life_s, prompts) if split == "time-frames" else None, None


def pet_modality(stack: PromptStack, image_size: int, pixel_size_mm: float, recon: str = "fbp",
                 osem_iterations: int = 4, osem_subsets: int = 8, frames: TimeFrames | None = None) -> PETModality:
    """The modality for a prompt stack's sinogram geometry on an ``image_size``^2 grid of ``pixel_size_mm``.

    ``frames``: the time-frame split (:func:`time_frames`); None: binomial thinning.
    """
    geom = pet_geometry(stack.angles_deg, stack.prompts.shape[2], stack.bin_size_mm, image_size, pixel_size_mm)
    return PETModality(geom, stack.activity_units, recon, osem_iterations=osem_iterations, osem_subsets=osem_subsets,
                       frames=frames)


def write_pet(out: str | Path, modality: PETModality, stack: PromptStack, seed: int, source: str | Path,
              max_slices: int | None = None, progress: bool = True, acquisition: MMRAcquisition | None = None,
              keep_measurement: bool = False) -> PrepareSummary:
    """Split, reconstruct and write the slices of ``stack`` to the prepared file ``out``.

    ``seed``: the binomial thinning (unused by the time-frame split, which is deterministic).
    ``acquisition``: a list-mode file read by :func:`~tomoconsensus.pet.mmr.read_mmr_listmode`, whose halves
    were assigned event by event (``stack`` is its stack); its attributes go into the file, and
    ``keep_measurement`` stores each plane's half prompts and delayeds under ``/measurement``.
    """
    check_reference_grid(stack, modality.geom, source)
    n = len(stack.prompts) if max_slices is None else min(max_slices, len(stack.prompts))
    attrs = {"source": str(source), "prompts_per_slice_mean": float(stack.prompts.sum((1, 2)).mean())}
    halves = delayed_halves = None
    if acquisition is not None:
        halves, delayed_halves = acquisition.halves, acquisition.delayed_halves
        attrs.update(acquisition.attrs)
    elif modality.frames is not None:
        lm = stack.listmode
        halves = modality.frames.split_events(lm.bin_index, lm.time_s, stack.prompts.shape)
    return write_prepared(out, modality, islice(prompt_slices(stack, halves, delayed_halves), n), n, seed, attrs,
                          progress=progress, keep_measurement=keep_measurement)

"""A Siemens Biograph mMR list-mode acquisition (Interfile header + PETLINK words) as a prompt stack.

``prepare pet --listmode HEADER.l.hdr`` reads the header (:mod:`tomoconsensus.pet.interfile`), decodes
and histograms the events into single-slice-rebinned, arc-corrected 2-D planes with the halves
assigned event by event (:mod:`tomoconsensus.pet.petlink`), and returns a :class:`PromptStack` with
the halves and what the prepared file records. The file is trusted over the header: the duration
comes from the time marks, the number of words from the file's size (one line says so where the
header disagrees). Without a normalisation file the images are not quantitative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tomoconsensus.errors import InputError
from tomoconsensus.pet.frames import TimeFrames
from tomoconsensus.pet.interfile import ListmodeHeader, read_listmode_header
from tomoconsensus.pet.io import PromptStack
from tomoconsensus.pet.petlink import (
    ARC_BIN_MM,
    N_PLANES,
    N_VIEWS,
    RING_SPACING_MM,
    ListmodeCounts,
    arc_correction,
    frame_halves,
    histogram_listmode,
    random_halves,
)

#: The unit of x without normalisation or calibration.
UNITS = ("uncalibrated: prompts per mm of LOR (no normalisation, attenuation or scatter correction; not "
         "quantitative)")
QUANTITATION = ("not quantitative: no normalisation file (crystal efficiencies, geometric and block profiles, "
                "detector gaps), no attenuation, scatter or dead-time correction; randoms subtracted as the "
                "delayed-window counts")


@dataclass
class MMRAcquisition:
    """A read mMR list-mode file.

    Attributes
    ----------
    stack : PromptStack
        prompts and delayed (planes, views, bins) of all events; ``m`` the arc-correction widths.
    halves : tuple of two ndarrays (planes, views, bins)
        Each half's prompts; ``delayed_halves`` each half's delayeds.
    frames : TimeFrames or None
        The time-frame split (None: random assignment of events).
    attrs : dict
        What the prepared file records (module docstring; docs/prepared-format.md).
    note : str or None
        One line where the header disagrees with the file (duration, words) or the file ends mid-word.
    """

    stack: PromptStack
    halves: tuple[np.ndarray, np.ndarray]
    delayed_halves: tuple[np.ndarray, np.ndarray]
    frames: TimeFrames | None
    attrs: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


def frame_ms(frame_s: float) -> int:
    """``--frame-s`` as whole milliseconds (the time marks' resolution); InputError otherwise."""
    ms = round(frame_s * 1000.0) if math.isfinite(frame_s) and 0 < frame_s < 1e9 else 0
    if ms < 1 or abs(ms - frame_s * 1000.0) > 1e-6 * ms:
        raise InputError("--frame-s", "frame-s", "a whole number of milliseconds >= 0.001 s (the list-mode file's "
                         "1 ms time marks)", frame_s)
    return ms


def header_note(header: ListmodeHeader, counts: ListmodeCounts) -> str | None:
    """One line where the header's duration or word count disagrees with the file, or the file ends mid-word."""
    parts = []
    said = [f"{header.header_duration_s:g} s" if header.header_duration_s is not None else None,
            f"{header.header_words:,} words" if header.header_words is not None else None]
    if ((header.header_duration_s is not None and abs(header.header_duration_s - counts.duration_s) > 1e-3)
            or (header.header_words is not None and header.header_words != counts.words)):
        parts.append(f"the header says {' and '.join(s for s in said if s)}, the file {header.data_file.name} holds "
                     f"{counts.words:,} words with time marks over {counts.duration_s:.3f} s: using the file's")
    if counts.trailing_bytes:
        parts.append(f"{counts.trailing_bytes} bytes after the last whole 32-bit word ignored")
    return f"{header.path}: " + "; ".join(parts) if parts else None


def _split_description(frames: TimeFrames | None, seed: int) -> str:
    if frames is not None:
        return frames.describe() + "; each half subtracts its own delayeds (split by the same frames)"
    return (f"random assignment of each list-mode event to a half (p = 1/2, seed {seed}): binomial thinning of "
            "every bin; m shared, a/2 and the half's own delayeds per half; halves scaled x2")


def read_mmr_listmode(header_path: str | Path, split: str = "thinning", frame_s: float | None = None,
                      half_life_s: float | None = None, seed: int = 0) -> MMRAcquisition:
    """Read an mMR list-mode acquisition and split its events into two halves.

    Parameters
    ----------
    header_path : path
        The Interfile header (``*.l.hdr``) naming the ``.l`` data file.
    split : {"thinning", "time-frames"}
        Random assignment of events (seeded), or alternating time frames of ``frame_s`` s.
    half_life_s : float or None
        Decay half-life for the time-frame weights; None: the header's ``isotope gamma halflife``.
    """
    header = read_listmode_header(header_path)
    if split == "time-frames" and frame_s is None:
        raise InputError("--frame-s", "frame-s", "a frame length in s with --split time-frames", "missing")
    ms = frame_ms(frame_s) if split == "time-frames" else None
    assign = frame_halves(ms) if ms is not None else random_halves(seed)
    counts = histogram_listmode(header.data_file, assign, header.data_offset, header.data_file)
    prompts = counts.prompts[0].astype(np.int64) + counts.prompts[1]
    if prompts.sum() == 0:
        raise InputError(header.data_file, "events", "at least one prompt event", "none")
    delayed = counts.delayed[0].astype(np.int64) + counts.delayed[1]
    frames = None
    if ms is not None:
        frames = TimeFrames(ms / 1000.0, counts.duration_s, half_life_s if half_life_s is not None
                            else header.half_life_s)
    arc = arc_correction()
    shape = prompts.shape
    stack = PromptStack(prompts, np.broadcast_to(arc.multiplicative, shape), np.broadcast_to(0.0, shape),
                        np.arange(N_VIEWS) * 180.0 / N_VIEWS, ARC_BIN_MM, UNITS,
                        [f"plane{p:03d}" for p in range(N_PLANES)], [header.path.name.split(".")[0]] * N_PLANES,
                        delayed=delayed)
    attrs = {
        "quantitative": False, "quantitation": QUANTITATION, "split": _split_description(frames, seed),
        "listmode_scanner": "Siemens Biograph mMR (originating system 2008)", "listmode_header": str(header.path),
        "listmode_data_file": str(header.data_file), "listmode_duration_s": counts.duration_s,
        "listmode_first_time_mark_ms": counts.first_mark_ms, "listmode_last_time_mark_ms": counts.last_mark_ms,
        "listmode_words": counts.words, "listmode_prompts": int(prompts.sum()),
        "listmode_delayeds": int(delayed.sum()), "listmode_other_tags": counts.other_tags,
        "isotope": header.isotope or "unknown", "isotope_half_life_s": header.half_life_s or float("nan"),
        "header_duration_s": header.header_duration_s or float("nan"), "header_words": header.header_words or -1,
        "rebinning": (f"single-slice rebinning of the span-1 michelogram (64 rings, ring difference <= 60): plane "
                      f"r1 + r2, {N_PLANES} planes {RING_SPACING_MM / 2:g} mm apart"),
        "arc_correction": (f"approximate: each non-arc-corrected bin (s = 335 mm sin(k pi / 504)) to the nearest of "
                           f"{arc.n_out} uniform bins of {ARC_BIN_MM} mm; m = summed s-widths / pitch (<= 1.04 mm "
                           "position error)"),
    }
    note = header_note(header, counts)
    if note:
        attrs["header_note"] = note
    return MMRAcquisition(stack, counts.prompts, counts.delayed, frames, attrs, note)

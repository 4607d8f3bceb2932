"""Siemens Biograph mMR list-mode (PETLINK 32-bit): words -> prompts and delayeds per 2-D plane and half.

Words (little-endian uint32; STIR ``CListRecordECAT8_32bit.h``, from Siemens' PETLINK guideline)
--------------------------------------------------------------------------------------------
* bit 31 = 0, an **event**: bit 30 = 1 prompt, 0 delayed (STIR ``is_prompt()``: ``delayed == 1``);
  bits 0-29 the bin address into the span-1 sinogram.
* bit 31 = 1, a **tag**: bits 29-30 = 00 a **time mark**, bits 0-28 the time in ms since the
  acquisition start (one every 1 ms); any other tag (dead time / singles, gantry, patient
  monitoring, control) is skipped and counted.

Bin address (STIR ``CListEventECAT8_32bit.cxx``): ``address = (z * 252 + view) * 344 + tang``, with
``z`` the sinogram index 0...4083 in the michelogram order of segments (ring difference
``d = r2 - r1``) ``0, -1, +1, -2, +2, ..., -60, +60``, segment ``d`` holding ``64 - |d|`` sinograms
indexed by the axial position ``a`` (the lower ring): ``r1 + r2 = 2a + |d|``,
``r1 = a + max(-d, 0)``, ``r2 = a + max(d, 0)`` (STIR ``ProjDataInfoCylindrical``). Single-slice
rebinning puts the event into plane ``p = r1 + r2`` (0...126, planes half a ring apart); the sign of
``d`` does not change ``p`` (an early STIR version ordered the segments +d before -d: same planes).

Transaxial sampling (STIR ``Scanner.cxx``, ``Siemens_mMR``: 64 rings, 344 bins, 504 detectors per
ring, inner radius 328 mm, average depth of interaction 7 mm, ring spacing 4.0625 mm, default bin
size 2.08626 mm; ``ProjDataInfoCylindricalNoArcCorr``): view ``v`` is at ``phi = v * 180 / 252``
degrees; bin ``tang`` is not arc-corrected, at ``s = R sin(k pi / 504)``, ``k = tang - 172``,
``R = 335 mm`` (the effective radius). Arc correction here is **approximate**: each bin's events go
to the nearest bin of a uniform grid of pitch 2.08626 mm (``u_j = j * pitch``, ``|j| <= 141``,
283 bins), and the multiplicative factor of a uniform bin is the summed width in ``s`` of the bins
it receives over the pitch (about 1 near the centre). The position error is at most half a pitch
(1.04 mm); crystal efficiencies, block profiles, detector gaps and the geometric factors (what a
normalisation file holds) are not corrected: the images are not quantitative.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomoconsensus.errors import InputError

N_RINGS, MAX_RING_DIFFERENCE, N_BINS, N_VIEWS, DETECTORS_PER_RING = 64, 60, 344, 252, 504
RING_SPACING_MM, INNER_RADIUS_MM, DOI_MM, ARC_BIN_MM = 4.0625, 328.0, 7.0, 2.08626
N_SINOGRAMS = N_RINGS + 2 * sum(N_RINGS - d for d in range(1, MAX_RING_DIFFERENCE + 1))  # 4084
N_PLANES = 2 * N_RINGS - 1  # 127 single-slice-rebinned planes, r1 + r2
_ADDRESS_BITS, _TIME_BITS = (1 << 30) - 1, (1 << 29) - 1
CHUNK_WORDS = 1 << 22


def michelogram(n_rings: int = N_RINGS, max_ring_difference: int = MAX_RING_DIFFERENCE) -> tuple[np.ndarray, ...]:
    """The ring pair ``(r1, r2)`` of each span-1 sinogram index ``z`` in the mMR's order (module docstring).

    Returns
    -------
    r1, r2 : ndarray (sinograms,), int64; ``r2 - r1`` runs 0, -1, +1, -2, +2, ... by segment
    """
    r1, r2 = [], []
    for d in [0] + [s * k for k in range(1, max_ring_difference + 1) for s in (-1, 1)]:
        a = np.arange(n_rings - abs(d))
        r1.append(a + max(-d, 0))
        r2.append(a + max(d, 0))
    return np.concatenate(r1), np.concatenate(r2)


@dataclass(frozen=True)
class ArcCorrection:
    """Nearest-neighbour arc correction of the 344 bins (module docstring).

    Attributes
    ----------
    target : ndarray (344,), int64, the uniform bin (0...n_out - 1) each raw bin goes to
    multiplicative : ndarray (n_out,), summed s-width of the raw bins of each uniform bin / pitch
    n_out : int
    pitch_mm : float
    """

    target: np.ndarray
    multiplicative: np.ndarray
    n_out: int
    pitch_mm: float


def arc_correction(n_bins: int = N_BINS, radius_mm: float = INNER_RADIUS_MM + DOI_MM,
                   detectors: int = DETECTORS_PER_RING, pitch_mm: float = ARC_BIN_MM) -> ArcCorrection:
    """Map the non-arc-corrected bins ``s_k = R sin(k pi / detectors)``, ``k = tang - n_bins // 2``, onto a
    uniform grid ``u_j = j * pitch`` (odd count, centre bin at s = 0)."""
    k = np.arange(n_bins) - n_bins // 2
    step = math.pi / detectors
    s = radius_mm * np.sin(k * step)
    width = radius_mm * (np.sin((k + 0.5) * step) - np.sin((k - 0.5) * step))
    j = np.rint(s / pitch_mm).astype(np.int64)
    half = int(np.abs(j).max())
    target = j + half
    mult = np.bincount(target, weights=width, minlength=2 * half + 1) / pitch_mm
    if np.any(mult <= 0):  # a uniform bin receiving no raw bin would have no sensitivity
        raise ValueError("arc correction leaves empty bins: the pitch is finer than the raw sampling")
    return ArcCorrection(target, mult, 2 * half + 1, pitch_mm)


def decode(words: np.ndarray) -> dict[str, np.ndarray]:
    """Classify PETLINK words (uint32, any length).

    Returns
    -------
    dict with ``event`` (bool mask), ``prompt`` (bool, per event), ``address`` (int64, per event),
    ``time`` (bool mask of time marks), ``time_ms`` (int64, per time mark), ``other`` (bool mask)
    """
    w = np.asarray(words, dtype=np.uint32)
    event = (w >> 31) == 0
    time = (w >> 29) == 0b100
    ev = w[event]
    return {"event": event, "prompt": ((ev >> 30) & 1) == 1, "address": (ev & _ADDRESS_BITS).astype(np.int64),
            "time": time, "time_ms": (w[time] & _TIME_BITS).astype(np.int64), "other": ~event & ~time}


@dataclass
class ListmodeCounts:
    """Events of a PETLINK file histogrammed per half into (planes, views, bins).

    Attributes
    ----------
    prompts, delayed : tuple of two ndarrays (planes, views, bins), int
        Half 1 and half 2 (the assignment given to :func:`histogram_listmode`).
    first_mark_ms, last_mark_ms : int
        The first and last time marks (ms); events before the first are counted in its millisecond.
    words, trailing_bytes, other_tags : int
        Whole 32-bit words read, bytes after the last whole word (ignored), skipped non-time tags.
    """

    prompts: tuple[np.ndarray, np.ndarray]
    delayed: tuple[np.ndarray, np.ndarray]
    first_mark_ms: int
    last_mark_ms: int
    words: int
    trailing_bytes: int
    other_tags: int

    @property
    def duration_s(self) -> float:
        """From the first time mark to the end of the last millisecond: ``(last - first + 1)`` ms."""
        return (self.last_mark_ms - self.first_mark_ms + 1) / 1000.0


#: Assigns events to half 1 (False) or 2 (True) from their milliseconds since the first mark (events,) int64.
Assignment = Callable[[np.ndarray], np.ndarray]


def random_halves(seed: int) -> Assignment:
    """Each event to either half with probability 1/2 (binomial thinning of every bin), seeded."""
    rng = np.random.default_rng(seed)
    return lambda ms: rng.random(len(ms)) >= 0.5


def frame_halves(frame_ms: int) -> Assignment:
    """Events of even frames of ``frame_ms`` ms to half 1, odd frames to half 2."""
    return lambda ms: (ms // frame_ms) % 2 == 1


def _words(data_file: Path, offset: int, source) -> tuple[int, int]:
    """Whole words after ``offset`` and the trailing bytes (never read)."""
    size = data_file.stat().st_size
    if offset > size:
        raise InputError(source, "data offset in bytes", f"at most the data file's size ({size} bytes)", offset)
    return (size - offset) // 4, (size - offset) % 4


def _first_mark(data_file: Path, offset: int, n_words: int, source) -> int:
    """The first time mark's value in ms (InputError without any)."""
    with open(data_file, "rb") as f:
        f.seek(offset)
        for start in range(0, n_words, CHUNK_WORDS):
            w = np.fromfile(f, dtype="<u4", count=min(CHUNK_WORDS, n_words - start))
            marks = decode(w)["time_ms"]
            if marks.size:
                return int(marks[0])
    raise InputError(data_file, "time marks", "1 ms time marks (tag words 0x8...) to time the events",
                     f"none in {n_words} words")


def _event_ms(d: dict, n: int, carry: int, source) -> tuple[np.ndarray, int]:
    """Each event's latest time mark (ms) in a chunk of ``n`` words, and the carry to the next chunk."""
    marks = d["time_ms"]
    if marks.size and (marks[0] < carry or np.any(np.diff(marks) < 0)):
        raise InputError(source, "time marks", "non-decreasing 1 ms time marks", "a time mark going backwards")
    last = np.maximum.accumulate(np.where(d["time"], np.arange(n), -1))
    value = np.full(n, carry, np.int64)
    value[d["time"]] = marks
    ms = np.where(last >= 0, value[np.maximum(last, 0)], carry)
    return ms[d["event"]], int(marks[-1]) if marks.size else carry


def histogram_listmode(data_file: str | Path, assign_half: Assignment, offset: int = 0,
                       source=None) -> ListmodeCounts:
    """Read a PETLINK file in chunks (never past its end) and histogram prompts and delayeds per half.

    Parameters
    ----------
    data_file : path
        The ``.l`` file.
    assign_half : callable
        (events,) ms since the first time mark -> bool (True: half 2); :func:`random_halves` or
        :func:`frame_halves`.
    offset : int
        Bytes before the first word.

    Returns
    -------
    ListmodeCounts, planes = 127 (r1 + r2), views = 252, bins = 283 (arc-corrected)
    """
    data_file = Path(data_file)
    source = source or data_file
    n_words, trailing = _words(data_file, offset, source)
    first = _first_mark(data_file, offset, n_words, source)
    r1, r2 = michelogram()
    plane_of = r1 + r2
    arc = arc_correction()
    n = N_PLANES * N_VIEWS * arc.n_out
    acc = np.zeros(4 * n, np.int32 if n_words < 2**31 else np.int64)  # prompt/delayed x half
    carry, other = first, 0
    with open(data_file, "rb") as f:
        f.seek(offset)
        for start in range(0, n_words, CHUNK_WORDS):
            w = np.fromfile(f, dtype="<u4", count=min(CHUNK_WORDS, n_words - start))
            d = decode(w)
            ms, carry = _event_ms(d, len(w), carry, source)
            address, other = d["address"], other + int(d["other"].sum())
            if address.size and address.max() >= N_SINOGRAMS * N_VIEWS * N_BINS:
                raise InputError(source, "bin address", f"< {N_SINOGRAMS * N_VIEWS * N_BINS} (span-1 mMR sinogram: "
                                 f"{N_BINS} bins x {N_VIEWS} views x {N_SINOGRAMS} sinograms)", int(address.max()))
            rest, tang = np.divmod(address, N_BINS)
            z, view = np.divmod(rest, N_VIEWS)
            flat = (plane_of[z] * N_VIEWS + view) * arc.n_out + arc.target[tang]
            kind = 2 * assign_half(ms - first).astype(np.int64) + (~d["prompt"]).astype(np.int64)
            index, counts = np.unique(kind * n + flat, return_counts=True)
            acc[index] += counts.astype(acc.dtype)
    h = acc.reshape(2, 2, N_PLANES, N_VIEWS, arc.n_out)  # half, (prompt, delayed), ...
    return ListmodeCounts((h[0, 0], h[1, 0]), (h[0, 1], h[1, 1]), first, carry, n_words, trailing, other)

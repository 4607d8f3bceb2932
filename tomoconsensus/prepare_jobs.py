"""Preparation by several processes on one machine (``prepare ct --jobs N``).

The slices are cut into contiguous chunks; N worker processes (forked for CPU work on Linux, else
started with ``spawn``, a fresh interpreter, as CUDA needs) each build the modality once and split and
reconstruct their chunks; the parent writes the results in slice order to the one output file
(:func:`tomoconsensus.data.prepared.write_prepared_slices`), at most ``2 N`` chunks ahead.

The output does not depend on N: a worker produces slice ``i`` from the recipe alone. This holds
where the slices' randomness has one stream per slice (CT's simulated noise: ``SeedSequence(seed)``
spawned per slice index by the modality's source) and the split draws none (CT's
odd/even views); workers pass no split generator, so a modality whose split is random fails loudly
here instead of giving other halves than ``--jobs 1``.
"""

from __future__ import annotations

import math
import multiprocessing
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

from tomoconsensus.data.prepared import PreparedSlice, prepare_slice


@dataclass(frozen=True)
class SliceWork:
    """What a worker needs to prepare any slice; every field must pickle (module-level functions, partials).

    Attributes
    ----------
    slices : callable(indices=list of int) -> iterator of Slice
        The slices with those indices, in that order.
    modality : callable() -> Modality
        Built once per worker.
    baselines : callable(modality) -> dict of name -> callable(measurement), optional
    threads : int
        torch threads per worker.
    """

    slices: Callable[..., Iterator[Any]]
    modality: Callable[[], Any]
    baselines: Callable[[Any], dict[str, Callable]] | None = None
    threads: int = 1


_STATE: dict[str, Any] = {}


def _start_worker(work: SliceWork) -> None:
    import torch

    torch.set_num_threads(work.threads)
    modality = work.modality()
    _STATE.update(work=work, modality=modality, baselines=work.baselines(modality) if work.baselines else {})


def _prepare_chunk(indices: list[int]) -> list[PreparedSlice]:
    work, modality = _STATE["work"], _STATE["modality"]
    return [prepare_slice(modality, item, None, _STATE["baselines"]) for item in work.slices(indices=indices)]


def chunks(n_slices: int, jobs: int, most: int = 8) -> list[list[int]]:
    """Contiguous index chunks, about four per process and at most ``most`` slices each."""
    size = max(1, min(most, math.ceil(n_slices / (4 * jobs))))
    return [list(range(s, min(s + size, n_slices))) for s in range(0, n_slices, size)]


def prepare_in_processes(work: SliceWork, n_slices: int, jobs: int, fork: bool = False) -> Iterator[PreparedSlice]:
    """Prepared slices 0 .. n_slices - 1, in order, computed by ``jobs`` processes (``fork``: start them by
    forking, quick, for CPU work on Linux; else ``spawn``, a fresh interpreter each, as CUDA requires)."""
    todo = iter(chunks(n_slices, jobs))
    context = multiprocessing.get_context("fork" if fork and sys.platform == "linux" else "spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker, initargs=(work,)) as pool:
        pending = deque(pool.submit(_prepare_chunk, c) for c in islice(todo, 2 * jobs))
        try:
            while pending:
                yield from pending.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append(pool.submit(_prepare_chunk, nxt))
        finally:
            for future in pending:
                future.cancel()

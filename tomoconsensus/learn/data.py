"""The data of a training run: which files, in memory or read on demand, checks, and where patches come from.

``train --data`` takes one prepared file, several, or folders of them (:mod:`tomoconsensus.data.sets`);
``--data-in-memory`` chooses between loading the arrays (``yes``), reading slices on demand through a
bounded cache (``no``, :mod:`tomoconsensus.data.lazy`) and deciding by size (``auto``). Either way the
patches of a step are the same numbers: the in-memory path cuts them from the stacks
(:class:`~tomoconsensus.data.patches.StackPatches`), the lazy path from the slices the batch needs
(:class:`~tomoconsensus.data.patches.CachedPatches`, the next batch read in the background). Under
torchrun each process reads only the slices of its share of each batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tomoconsensus.data.lazy import CACHE_MB, LazyPrepared, SliceCache, choose_in_memory, open_prepared
from tomoconsensus.data.patches import CachedPatches, PatchSampler, StackPatches
from tomoconsensus.data.prepared import PreparedDataset
from tomoconsensus.data.sets import PathsLike, as_path_list, check_disjoint_patients, expand_prepared, is_many
from tomoconsensus.errors import InputError
from tomoconsensus.learn.config import CODE_SOURCE, TrainConfig


def open_training_data(config: TrainConfig, train_path: PathsLike, val_path: PathsLike | None, world: int,
                       data_in_memory: str = "auto") -> tuple[PreparedDataset, PreparedDataset | None]:
    """Training and validation data, checked (networks, method, batch shares, disjoint patients), loaded or
    read on demand as ``data_in_memory`` says (``auto``: :func:`tomoconsensus.data.lazy.choose_in_memory`)."""
    in_memory = choose_in_memory(data_in_memory, [train_path, val_path])
    data = open_prepared(train_path, in_memory, "train_path")
    check_training_data(data, config, _name(train_path), world)
    val = None
    if val_path:
        val = open_prepared(val_path, in_memory, "val_path")
        check_data(val, config, _name(val_path), like=data)
        check_disjoint_patients(train_path, val_path)
    return data, val


def _name(paths: PathsLike) -> str:
    return ", ".join(str(p) for p in as_path_list(paths))


def dataset_tensors(data: PreparedDataset, device) -> dict[str, Any]:
    """Image stacks as tensors, on the GPU if they take less than half its free memory."""
    import torch

    arrays = {"x1": data.x1, "x2": data.x2, "x_est": data.x_est}
    arrays.update({k: getattr(data, k) for k in ("reference", "teacher") if getattr(data, k) is not None})
    target = torch.device("cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if sum(a.nbytes for a in arrays.values()) < 0.5 * free:
            target = device
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(target) for k, v in arrays.items()}


def patch_source(data: PreparedDataset, sampler: PatchSampler, device, world: int, cache_mb: float = CACHE_MB,
                 prefetch: bool = True) -> StackPatches | CachedPatches:
    """Where a step's patches come from: the stacks in memory, or a slice cache of ``cache_mb`` MB (at least
    two batches' slices: the current and the prefetched next one)."""
    if isinstance(data, LazyPrepared):
        cache = SliceCache(data, cache_mb, min_slices=2 * (sampler.batch_size // world))
        return CachedPatches(cache, sampler.patch_size, prefetch)
    return StackPatches(dataset_tensors(data, device), sampler.patch_size)


def check_data(data: PreparedDataset, config: TrainConfig, source: str | Path,
               like: PreparedDataset | None = None) -> None:
    """Refuse data the configured networks cannot take (channels, image smaller than 2**depth) or,
    given ``like`` (the training data), validation data of another modality or units."""
    if data.channels != config.channels:
        raise InputError(source, "x1", f"{config.channels} channel(s) as in the run config 'channels'", data.channels)
    smallest = min(data.x1.shape[-2:])
    if smallest < 2**config.depth:
        raise InputError(source, "x1", f"images of at least 2**depth = {2**config.depth} pixels for a UNet of "
                         f"depth {config.depth} (or a smaller depth)", data.x1.shape[-2:])
    if like is not None:
        for key in ("modality", "units"):
            if data.attrs.get(key) != like.attrs.get(key):
                raise InputError(source, key, f"{like.attrs.get(key)!r} like the training data", data.attrs.get(key))


def check_training_data(data: PreparedDataset, config: TrainConfig, source: str | Path, world: int) -> None:
    """Refuse training data the networks cannot take or the method cannot learn from, and a batch that the
    ``world`` processes cannot share equally."""
    check_data(data, config, source)
    if config.method == "noise2clean" and data.reference is None:
        raise InputError(source, "reference", "a clean reference for --method noise2clean "
                         "(prepare from clean images, or use consensus/noise2noise)", "missing")
    if config.method == "distill" and data.teacher is None:
        raise InputError(source, "teacher", "a teacher's output (made by tomoconsensus distill)", "missing")
    if config.batch_size % world:
        raise InputError(CODE_SOURCE, "batch_size", f"a multiple of the {world} processes", config.batch_size)


def patch_sampler(data: PreparedDataset, config: TrainConfig, source: str | Path) -> PatchSampler:
    """The run's patch locations; refuses an epoch without one full batch and patches the UNet cannot pool."""
    _, _, height, width = data.x1.shape
    sampler = PatchSampler(len(data), height, width, config.patch_size, config.patches_per_slice,
                           config.batch_size, config.seed)
    if sampler.batches_per_epoch == 0:
        raise InputError(source, "slices", f"at least {config.batch_size} patches per epoch "
                         "(more slices, more patches_per_slice or a smaller batch_size)", len(data))
    if sampler.patch_size < 2**config.depth:
        raise InputError(CODE_SOURCE, "depth", f"a UNet whose {config.depth} poolings fit the "
                         f"{sampler.patch_size}-pixel patches (patch_size >= 2**depth = {2**config.depth}: "
                         "a larger patch_size or a smaller depth)",
                         config.depth)
    return sampler


def _record_path(paths: PathsLike | None) -> str | list[str]:
    if not paths:
        return ""
    listed = [str(Path(p).resolve()) for p in as_path_list(paths)]
    return listed[0] if len(listed) == 1 else listed


def data_record(data: PreparedDataset, train_path: PathsLike, val_path: PathsLike | None) -> dict[str, Any]:
    """What a checkpoint records about its data (compared on resume and by ``denoise``): the paths as given
    (one string for one file or folder, a list for several), the files they stood for, modality, units,
    image shape."""
    record = {"train": _record_path(train_path), "val": _record_path(val_path),
              "modality": data.modality, "units": str(data.attrs.get("units", "")),
              "image_shape": [int(n) for n in data.x1.shape[-2:]]}
    if is_many(train_path):
        record["train_files"] = [str(p.resolve()) for p in expand_prepared(train_path)]
    return record

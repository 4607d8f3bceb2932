"""Prepared data read on demand: datasets larger than memory, and one copy fewer per process.

A prepared file stores every image dataset in chunks of one slice (gzip), so a slice costs one chunk
read. :class:`LazyPrepared` presents one or more prepared files (:mod:`tomoconsensus.data.sets`) like
a :class:`~tomoconsensus.data.prepared.PreparedDataset` whose arrays (:class:`LazyArray`) are read
when indexed; :class:`SliceCache` keeps the most recently used slices, at most ``cache_mb`` MB (LRU).

:func:`choose_in_memory` decides between this and loading everything (``--data-in-memory``):
``yes`` loads, ``no`` reads lazily, ``auto`` loads when the arrays take at most
:data:`MEMORY_SHARE` of the memory available (host: ``MemAvailable`` of /proc/meminfo; CUDA: the
device's free memory, the stacks are kept on the GPU there).

The values read are the stored float32 values, exactly what :func:`read_prepared` loads, so training
on lazy data draws bit-identical batches.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tomoconsensus.data.prepared import IMAGE_KEYS, PreparedDataset, read_prepared
from tomoconsensus.data.sets import PathsLike, check_same_kind, dataset_path, expand_prepared, read_prepared_many
from tomoconsensus.errors import InputError, require_finite
from tomoconsensus.hdf5 import open_hdf5, read_strings
from tomoconsensus.hostmem import available_host_bytes

#: ``--data-in-memory auto`` loads the data when they take at most this share of the available memory.
MEMORY_SHARE = 0.25
#: Default bound of the slice cache of lazily read training data, MB.
CACHE_MB = 256.0
IN_MEMORY_CHOICES = ("auto", "yes", "no")


class FileSet:
    """Prepared files read as one stack of slices; h5py handles are opened per process, on first use."""

    def __init__(self, files: list[Path]):
        self.files = files
        self.counts = [int(d["slices"]) for d in check_same_kind(files)]
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        self._handles: dict[int, h5py.File] = {}
        self._pid = os.getpid()
        self.lock = threading.Lock()  # h5py serialises calls anyway; this guards the handle table

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def handle(self, index: int) -> h5py.File:
        if self._pid != os.getpid():  # a forked child: never share the parent's HDF5 handles
            self._handles, self._pid = {}, os.getpid()
        if index not in self._handles:
            self._handles[index] = h5py.File(self.files[index], "r")
        return self._handles[index]

    def locate(self, i: int) -> tuple[int, int]:
        """(file index, slice index in the file) of global slice ``i``."""
        if not 0 <= i < len(self):
            raise IndexError(f"slice {i} of {len(self)}")
        f = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return f, i - int(self.offsets[f])

    def read(self, key: str, start: int, stop: int) -> np.ndarray:
        """Slices ``start:stop`` (global) of dataset ``key``, float32 (slices, C, H, W)."""
        parts = []
        with self.lock:
            for f in range(len(self.files)):
                lo, hi = max(start, self.offsets[f]), min(stop, self.offsets[f + 1])
                if lo < hi:
                    ds = self.handle(f)[key]
                    part = np.asarray(ds[lo - self.offsets[f]:hi - self.offsets[f]], dtype=np.float32)
                    require_finite(part, self.files[f], key)  # what read_prepared checks, slice by slice
                    parts.append(part)
        return np.concatenate(parts) if len(parts) != 1 else parts[0]

    def close(self) -> None:
        for h in self._handles.values():
            h.close()
        self._handles = {}


class LazyArray:
    """Dataset ``key`` of a :class:`FileSet`, (slices, C, H, W) float32, read when indexed.

    Indexing takes an int, a slice with step 1, or a 1-D sequence of ints and returns a NumPy array.
    """

    def __init__(self, files: FileSet, key: str, shape: tuple[int, ...]):
        self.files, self.key = files, key
        self.shape = (len(files), *shape)
        self.dtype, self.ndim = np.dtype(np.float32), 4

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * 4

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise IndexError("lazy prepared arrays take slices with step 1")
            return self.files.read(self.key, start, max(start, stop))
        if isinstance(index, (int, np.integer)):
            i = int(index) + (len(self) if index < 0 else 0)
            return self.files.read(self.key, i, i + 1)[0]
        return np.stack([self[int(i)] for i in np.asarray(index).ravel()])


class LazyPrepared(PreparedDataset):
    """One or more prepared files as a dataset whose image arrays are :class:`LazyArray` (read on demand).

    Ids and attributes are read at once (small); ``baselines`` are not offered (training does not use
    them). ``files`` lists the files in slice order.
    """

    def __init__(self, paths: PathsLike, option: str = "--data"):
        files = expand_prepared(paths, option)
        fileset = FileSet(files)
        first = fileset.handle(0)
        shape = tuple(int(n) for n in first["x1"].shape[1:])
        arrays = {k: LazyArray(fileset, k, shape) for k in (*IMAGE_KEYS, "reference", "teacher") if k in first}
        for index, path in enumerate(files):
            for key in arrays:
                found = fileset.handle(index)[key].shape
                if found[1:] != shape or found[0] != fileset.counts[index]:
                    raise InputError(path, key, f"shape {(fileset.counts[index], *shape)} like x1", found)
        ids, patients = [], []
        for index, path in enumerate(files):
            f = fileset.handle(index)
            ids += read_strings(f["slice_id"], path)
            patients += read_strings(f["patient_id"], path) if "patient_id" in f else read_strings(f["slice_id"], path)
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in first.attrs.items()}
        super().__init__(arrays["x1"], arrays["x2"], arrays["x_est"], arrays.get("reference"), {}, ids, patients,
                         attrs, dataset_path(paths), arrays.get("teacher"))
        self.fileset = fileset
        if len(ids) != len(fileset):
            raise InputError(dataset_path(paths), "slice_id", f"{len(fileset)} ids, one per slice", len(ids))

    @property
    def arrays(self) -> dict[str, LazyArray]:
        """The image arrays training reads (x1, x2, x_est and reference / teacher where present)."""
        return {k: v for k in (*IMAGE_KEYS, "reference", "teacher") if (v := getattr(self, k)) is not None}

    def select(self, indices):
        raise NotImplementedError("select a subset of lazily read data by preparing it into its own files")


class SliceCache:
    """The most recently used slices of a :class:`LazyPrepared` (all its arrays), at most ``cache_mb`` MB.

    Thread-safe: a prefetch thread may fill it while the training step reads it. The capacity is at
    least ``min_slices`` slices whatever ``cache_mb`` says (one batch and the prefetched next one).
    """

    def __init__(self, data: LazyPrepared, cache_mb: float = CACHE_MB, min_slices: int = 1):
        self.data = data
        self.slice_bytes = sum(a.nbytes // len(a) for a in data.arrays.values())
        self.capacity = max(int(min_slices), int(cache_mb * 1e6 // self.slice_bytes))
        self._slices: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self.reads = 0  # slices read from the files (cache misses)

    def get(self, indices) -> list[dict[str, np.ndarray]]:
        """Slices ``indices`` (global), each as a dict array name -> (C, H, W), reading the misses."""
        out = []
        for i in (int(i) for i in indices):
            with self._lock:
                entry = self._slices.get(i)
                if entry is not None:
                    self._slices.move_to_end(i)
            if entry is None:
                entry = {k: a[i] for k, a in self.data.arrays.items()}
                with self._lock:
                    self.reads += 1
                    self._slices[i] = entry
                    while len(self._slices) > self.capacity:
                        self._slices.popitem(last=False)
            out.append(entry)
        return out

    def __len__(self) -> int:
        return len(self._slices)


def available_memory_bytes(device_type: str = "cpu", device: Any = None) -> int:
    """Memory the data could take: MemAvailable of /proc/meminfo (else free pages), or CUDA free memory."""
    if device_type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    return available_host_bytes()


def data_bytes(paths: PathsLike) -> int:
    """Bytes the image arrays training reads (x1, x2, x_est, reference, teacher) take in memory, float32."""
    total = 0
    for path in expand_prepared(paths):
        with open_hdf5(path, "prepared HDF5 file (tomoconsensus prepare ...)") as f:
            total += sum(int(np.prod(item.shape)) * 4 for k in (*IMAGE_KEYS, "reference", "teacher")
                         if isinstance(item := f.get(k), h5py.Dataset))  # other items: refused by the reader
    return total


def choose_in_memory(mode: str, paths: list[PathsLike], device_type: str = "cpu", device: Any = None) -> bool:
    """Whether ``--data-in-memory mode`` loads ``paths`` (training and validation data) into memory."""
    if mode not in IN_MEMORY_CHOICES:
        raise InputError("--data-in-memory", "data-in-memory", f"one of {', '.join(IN_MEMORY_CHOICES)}", mode)
    if mode != "auto":
        return mode == "yes"
    need = sum(data_bytes(p) for p in paths if p is not None)
    return need <= MEMORY_SHARE * available_memory_bytes(device_type, device)


def open_prepared(paths: PathsLike, in_memory: bool, option: str = "--data") -> PreparedDataset:
    """A dataset loaded into memory (:func:`read_prepared_many`) or read on demand (:class:`LazyPrepared`)."""
    if in_memory:
        return read_prepared_many(paths, option)
    return LazyPrepared(paths, option)


__all__ = ["CACHE_MB", "IN_MEMORY_CHOICES", "MEMORY_SHARE", "FileSet", "LazyArray", "LazyPrepared", "SliceCache",
           "available_memory_bytes", "choose_in_memory", "data_bytes", "open_prepared", "read_prepared"]

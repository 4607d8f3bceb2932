"""Opening user HDF5 files with an error that names the file, and reading their datasets safely."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from tomoconsensus.errors import InputError


def open_hdf5(path: str | Path, what: str) -> h5py.File:
    """Open ``path`` read-only; a missing, truncated or non-HDF5 file raises InputError."""
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise InputError(path, "file", f"a readable {what}", str(exc)) from None


def read_strings(dataset: h5py.Dataset, path: str | Path | None = None) -> list[str]:
    """A 1-D string dataset (bytes or str, as h5py versions return them) as a list of str."""
    if not isinstance(dataset, h5py.Dataset) or dataset.ndim != 1:
        raise InputError(path or getattr(dataset.file, "filename", None), dataset.name.lstrip("/"),
                         "a 1-D dataset of strings",
                         "an HDF5 group" if isinstance(dataset, h5py.Group) else dataset.shape)
    return [s.decode() if isinstance(s, bytes) else str(s) for s in dataset[()]]


def read_array(f: h5py.File, key: str, path: str | Path, expected: str = "a numeric dataset",
               complex_ok: bool = False) -> np.ndarray:
    """Dataset ``key`` as a NumPy array; InputError if it is a group, or holds strings, objects or compounds.

    ``complex_ok`` also accepts complex data and the MATLAB v7.3 compound (``real``, ``imag``).
    """
    item = f.get(key)
    if not isinstance(item, h5py.Dataset):
        raise InputError(path, key, expected, "an HDF5 group" if isinstance(item, h5py.Group) else "missing")
    names = item.dtype.names
    if complex_ok and names and {"real", "imag"} <= set(names):
        data = item[()]
        return data["real"] + 1j * data["imag"]
    allowed = "biufc" if complex_ok else "biuf"
    if names or item.dtype.kind not in allowed:
        raise InputError(path, key, expected, f"dtype {item.dtype}")
    return item[()]

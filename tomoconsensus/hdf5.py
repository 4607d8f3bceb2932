"""Opening user HDF5 files with an error that names the file, and reading their string datasets."""

from __future__ import annotations

from pathlib import Path

import h5py

from tomoconsensus.errors import InputError


def open_hdf5(path: str | Path, what: str) -> h5py.File:
    """Open ``path`` read-only; a missing, truncated or non-HDF5 file raises InputError."""
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise InputError(path, "file", f"a readable {what}", str(exc)) from None


def read_strings(dataset: h5py.Dataset) -> list[str]:
    """A string dataset (bytes or str, as h5py versions return them) as a list of str."""
    return [s.decode() if isinstance(s, bytes) else str(s) for s in dataset[()]]

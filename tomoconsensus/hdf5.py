"""Opening user HDF5 files with an error that names the file, reading their datasets safely, and writing
HDF5 outputs that survive a full disk (:func:`create_hdf5`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
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


class _GuardedFile:
    """A file for h5py's ``fileobj`` driver whose failed writes (ENOSPC, EFBIG, ...) do not reach HDF5.

    HDF5 cannot recover from a failed write: the file stays half-open in the library, and closing it
    again (explicitly or at interpreter exit) crashes the process (SIGSEGV, HDF5 2.0). Here the first
    failure is recorded in ``error``; that write and all later ones are skipped but counted as done
    (the file keeps its size as HDF5 sees it, unwritten bytes read as zeros), so HDF5 goes on and closes
    the file normally; :func:`create_hdf5` then raises the recorded error (the caller removes the
    incomplete file).
    """

    def __init__(self, path: Path, mode: str):
        self._fh = open(path, "r+b" if mode == "a" else "w+b", buffering=0)  # noqa: SIM115 (closed by create_hdf5)
        self.error: OSError | None = None
        self._pos = 0
        self._size = os.fstat(self._fh.fileno()).st_size

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = pos + (0, self._pos, self._size)[whence]
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        self._fh.seek(self._pos)
        n = self._fh.readinto(view) or 0
        want = max(0, min(len(view), self._size - self._pos))
        if n < want:  # bytes whose write was skipped after a failure
            view[n:want] = bytes(want - n)
            n = want
        self._pos += n
        return n

    def read(self, n: int = -1) -> bytes:
        buffer = bytearray(max(0, self._size - self._pos) if n < 0 else n)
        return bytes(buffer[:self.readinto(buffer)])

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        if self.error is None:
            try:
                self._fh.seek(self._pos)
                done = 0
                while done < len(view):
                    done += self._fh.write(view[done:])
            except OSError as exc:
                self.error = exc
        self._pos += len(view)
        self._size = max(self._size, self._pos)
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if self.error is None:
            try:
                self._fh.truncate(size)
            except OSError as exc:
                self.error = exc
        self._size = size
        return size

    def flush(self) -> None:
        pass  # unbuffered

    def close(self) -> None:
        self._fh.close()


@contextlib.contextmanager
def create_hdf5(path: str | Path, mode: str = "w") -> Iterator[h5py.File]:
    """Open ``path`` for writing (``"w"``: new, ``"a"``: an existing file) through :class:`_GuardedFile`.

    A failed write (full disk, file-size limit) is raised as its OSError once the file is closed (or
    at the end of the block), never inside HDF5. Use inside :func:`tomoconsensus.atomic.atomic_path`,
    which removes the incomplete file and turns the error into one line.
    """
    guarded = _GuardedFile(Path(path), mode)
    try:
        with h5py.File(guarded, mode) as f:
            f.guarded = guarded  # lets long writers check guarded.error between slices (check_written)
            yield f
    finally:
        guarded.close()
    if guarded.error is not None:
        raise OSError(guarded.error.errno, guarded.error.strerror, str(path))


def check_written(f: h5py.File) -> None:
    """Raise the first failed write of a :func:`create_hdf5` file now (stop early instead of at the end)."""
    guarded = getattr(f, "guarded", None)
    if guarded is not None and guarded.error is not None:
        raise OSError(guarded.error.errno, guarded.error.strerror, guarded.error.filename)

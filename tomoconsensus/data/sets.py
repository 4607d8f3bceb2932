"""Several prepared files used as one dataset (one file per patient is the natural unit).

``--data`` of ``train``, ``distill``, ``denoise`` and ``evaluate`` takes one or more prepared files
and folders of them; a folder stands for the ``*.h5`` files directly inside it, in name order. The
files of one dataset must agree on what makes their images comparable::

    format, format_version, modality, units, channels, image shape (channels, H, W),
    geometry_toml, dose_fraction, the datasets present (reference, teacher, baselines/<name>)

(an attribute missing from every file is fine; missing from one only is a difference). The
slices of the dataset are the files' slices one after another, each keeping its own ``slice_id`` and
``patient_id``. Validation data must hold other patients than the training data
(:func:`check_disjoint_patients`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tomoconsensus.data.prepared import FORMAT, IMAGE_KEYS, PreparedDataset, read_prepared
from tomoconsensus.errors import InputError
from tomoconsensus.hdf5 import open_hdf5, read_strings

#: Attributes every file of one dataset shares.
SHARED_ATTRS = ("format", "format_version", "modality", "units", "channels", "geometry_toml", "dose_fraction")

PathsLike = str | Path | Sequence[str | Path]


def as_path_list(paths: PathsLike) -> list[Path]:
    """``paths`` (one path or several) as a list of Path."""
    if isinstance(paths, (str, Path)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def expand_prepared(paths: PathsLike, option: str = "--data") -> list[Path]:
    """The prepared files named by ``paths``: files as given, folders as their ``*.h5`` files (name order).

    Raises
    ------
    InputError
        A path that does not exist, a folder without ``.h5`` files, or a file named twice.
    """
    files: list[Path] = []
    for path in as_path_list(paths):
        if path.is_dir():
            found = sorted(p for p in path.glob("*.h5") if p.is_file())
            if not found:
                raise InputError(path, option, "a prepared .h5 file or a folder holding some", "a folder without .h5")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise InputError(path, option, "an existing prepared file or folder", "not found")
    seen: dict[Path, Path] = {}
    for f in files:
        key = f.resolve()
        if key in seen:
            raise InputError(f, option, "each prepared file once", f"also given as {seen[key]}")
        seen[key] = f
    return files


def describe_file(path: Path) -> dict[str, Any]:
    """What :func:`check_same_kind` compares, read from the file's attributes and dataset shapes only."""
    with open_hdf5(path, "prepared HDF5 file (tomoconsensus prepare ...)") as f:
        if f.attrs.get("format") != FORMAT:
            raise InputError(path, "format", f"attribute format = '{FORMAT}'", f.attrs.get("format"))
        missing = [k for k in IMAGE_KEYS + ("slice_id",) if k not in f]
        if missing:
            raise InputError(path, missing[0], "this dataset (see docs/prepared-format.md)", "missing")
        out: dict[str, Any] = {k: _plain(f.attrs[k]) for k in SHARED_ATTRS if k in f.attrs}
        baselines = f.get("baselines")
        names = sorted(baselines) if isinstance(baselines, h5py.Group) else []
        for key in (*IMAGE_KEYS, "reference", "teacher", *(f"baselines/{n}" for n in names)):
            item = f.get(key)
            if item is not None and not (isinstance(item, h5py.Dataset) and item.ndim == 4 and item.dtype.kind == "f"):
                raise InputError(path, key, "a float dataset (slices, channels, H, W)",
                                 "an HDF5 group" if isinstance(item, h5py.Group) else f"{item.dtype} {item.shape}")
        out["image shape"] = tuple(int(n) for n in f["x1"].shape[1:])
        out["datasets"] = ", ".join([k for k in ("reference", "teacher") if k in f] + [f"baselines/{n}" for n in names])
        out["slices"] = int(f["x1"].shape[0])
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_same_kind(files: Sequence[Path]) -> list[dict[str, Any]]:
    """Refuse files that differ in a shared attribute, image shape or datasets (one line naming the file
    and the field); returns each file's description."""
    described = [describe_file(f) for f in files]
    first = described[0]
    for path, desc in zip(files[1:], described[1:], strict=True):
        for key in (*SHARED_ATTRS, "image shape", "datasets"):
            if desc.get(key) != first.get(key):
                raise InputError(path, key, f"{first.get(key)!r} like {files[0]} (one dataset: one format, geometry, "
                                 "modality and dose)", desc.get(key, "missing"))
    return described


def patient_ids(files: Sequence[Path]) -> dict[str, Path]:
    """patient id -> the first file holding it (``slice_id`` where a file has no ``patient_id``)."""
    owners: dict[str, Path] = {}
    for path in files:
        with open_hdf5(path, "prepared HDF5 file") as f:
            key = "patient_id" if "patient_id" in f else "slice_id"
            for pid in read_strings(f[key], path):
                owners.setdefault(pid, path)
    return owners


def check_disjoint_patients(train_files: PathsLike, val_files: PathsLike) -> None:
    """Refuse validation data that share a patient with the training data (selection on held-out slices of
    a training patient would favour the epoch that fits that patient best).

    Raises
    ------
    InputError
        Naming the validation file, ``patient_id``, how many patients are shared and one of them.
    """
    train = patient_ids(expand_prepared(train_files))
    val_paths = expand_prepared(val_files, "--val")
    for path in val_paths:
        shared = sorted(set(patient_ids([path])) & set(train))
        if shared:
            raise InputError(path, "patient_id", "patients other than the training data's (--val holds held-out "
                             "patients)", f"{len(shared)} shared, e.g. {shared[0]!r} also in {train[shared[0]]}")


def read_prepared_many(paths: PathsLike, option: str = "--data") -> PreparedDataset:
    """Several prepared files (or folders) loaded into memory as one dataset, slices in file order.

    One file is :func:`read_prepared` itself; several are checked with :func:`check_same_kind` and their
    arrays concatenated (the attributes are the first file's; ``path`` is the folder where one folder was
    given, else the first file).
    """
    files = expand_prepared(paths, option)
    if len(files) == 1:
        return read_prepared(files[0])
    check_same_kind(files)
    parts = [read_prepared(f) for f in files]
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    optional = {k: cat(k) if getattr(parts[0], k) is not None else None for k in ("reference", "teacher")}
    return PreparedDataset(cat("x1"), cat("x2"), cat("x_est"), optional["reference"],
                           {k: np.concatenate([p.baselines[k] for p in parts]) for k in parts[0].baselines},
                           sum((p.slice_ids for p in parts), []), sum((p.patient_ids for p in parts), []),
                           dict(parts[0].attrs), dataset_path(paths), optional["teacher"])


def dataset_path(paths: PathsLike) -> Path:
    """The path that names a dataset in records: the one path given (file or folder), else the first."""
    return as_path_list(paths)[0]


def is_many(paths: PathsLike) -> bool:
    """Whether ``paths`` name more than one file (several paths, or a folder)."""
    listed = as_path_list(paths)
    return len(listed) > 1 or listed[0].is_dir()

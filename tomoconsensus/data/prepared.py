"""Prepared datasets: one HDF5 file with the split reconstructions of every slice.

Schema (``format = "tomoconsensus.prepared"``, ``format_version = 1``; see docs/prepared-format.md)::

    /x1, /x2, /x_est      float32 (slices, channels, H, W)  split halves and full-data estimate
    /reference            float32 (slices, channels, H, W)  clean image, only where one exists
    /baselines/<name>     float32 (slices, channels, H, W)  e.g. "tv" (CT), "zero_filled", "sense" (MR)
    /teacher              float32 (slices, channels, H, W)  a trained run's output, only in the copies
                                                            that ``tomoconsensus distill`` trains on
    /measurement/<name>   (slices, ...) the raw measurement, only where asked (``keep_measurement``) and
                          the modality provides it (MR: k-space, coil maps, lines of each half,
                          scale), for steps after the networks (MR data consistency)
    /slice_id, /patient_id  utf-8 strings (slices,)
    attributes            modality, units, channels, seed, created_utc, tomoconsensus_version and
                          everything the modality reports (geometry TOML, dose fraction, ...)

The file is written to a temporary name and renamed when complete, so an interrupted ``prepare``
leaves no partial output and can simply be run again.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from tomoconsensus.atomic import atomic_path
from tomoconsensus.errors import InputError, require_finite
from tomoconsensus.hdf5 import check_written, create_hdf5, open_hdf5, read_array, read_strings
from tomoconsensus.modality import Modality, Slice, split_and_reconstruct
from tomoconsensus.progress import progress as progress_bar

FORMAT = "tomoconsensus.prepared"
FORMAT_VERSION = 1
IMAGE_KEYS = ("x1", "x2", "x_est")
_STR = h5py.string_dtype("utf-8")

#: A baseline reconstruction: (modality, measurement) -> image (channels, H, W).
Baseline = Callable[[Any], np.ndarray]


@dataclass
class PrepareSummary:
    """What ``write_prepared`` produced."""

    path: Path
    n_slices: int
    seconds: float
    bytes: int
    datasets: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"wrote {self.path} : {self.n_slices} slices, datasets {', '.join(self.datasets)}, "
                f"{self.bytes / 1e6:.1f} MB, {self.seconds:.1f} s")


def _attr_value(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return value


class PreparedSlice(NamedTuple):
    """One slice as written: ids, float32 images by dataset name (``x1``, ``x2``, ``x_est``, ``reference``,
    ``baselines/<name>``; each (channels, H, W)) and the kept measurement arrays (``measurement/<name>``)."""

    slice_id: str
    patient_id: str
    images: dict[str, np.ndarray]
    measurement: dict[str, np.ndarray]


def prepare_slice(modality: Modality, item: Slice, split_rng: np.random.Generator,
                  baselines: dict[str, Baseline] | None = None, keep_measurement: bool = False) -> PreparedSlice:
    """Split and reconstruct one slice (and its baselines): what :func:`write_prepared` stores for it."""
    images = dict(split_and_reconstruct(modality, item.measurement, split_rng)._asdict())
    if item.reference is not None:
        images["reference"] = np.asarray(item.reference, dtype=np.float32)
    for name, baseline in (baselines or {}).items():
        images[f"baselines/{name}"] = baseline(item.measurement)
    measurement = {}
    if keep_measurement and hasattr(modality, "measurement_arrays"):
        arrays = modality.measurement_arrays(item.measurement)
        measurement = {f"measurement/{k}": np.asarray(v) for k, v in arrays.items()}
    return PreparedSlice(item.slice_id, item.patient_id, images, measurement)


def write_prepared(out: str | Path, modality: Modality, slices: Iterable[Slice], n_slices: int,
                   seed: int, attrs: dict[str, Any] | None = None,
                   baselines: dict[str, Baseline] | None = None, progress: bool = True,
                   keep_measurement: bool = False) -> PrepareSummary:
    """Split, reconstruct and write every slice to a prepared HDF5 file, atomically.

    Parameters
    ----------
    out : path
        Output ``.h5`` file; replaced only once the new one is complete.
    modality : Modality
        Provides split, reconstruct and estimate.
    slices : iterable of Slice
        Exactly ``n_slices`` slices (a generator is fine: slices are processed one at a time).
    seed : int
        Seed of the split randomness (recorded; CT's odd/even split is deterministic). One generator,
        ``default_rng(seed)``, draws the splits of the slices in order.
    attrs : dict, optional
        Extra file attributes (dose fraction, input path, ...).
    baselines : dict of name -> callable(measurement) -> image, optional
        Extra reconstructions stored under ``/baselines/<name>`` (e.g. TV).
    keep_measurement : bool
        Also store the modality's ``measurement_arrays(measurement)`` (a dict of arrays, same shapes
        for every slice) under ``/measurement/<name>``, where the modality has that method.
    """
    split_rng = np.random.default_rng(seed)
    results = (prepare_slice(modality, item, split_rng, baselines, keep_measurement) for item in slices)
    return write_prepared_slices(out, modality, results, n_slices, seed, attrs, progress)


def write_prepared_slices(out: str | Path, modality: Modality, results: Iterable[PreparedSlice], n_slices: int,
                          seed: int, attrs: dict[str, Any] | None = None, progress: bool = True) -> PrepareSummary:
    """Write slices already split and reconstructed (:func:`prepare_slice`, in order; e.g. by several
    processes, :mod:`tomoconsensus.prepare_jobs`) to a prepared file, atomically."""
    attrs_source = (attrs or {}).get("source", out)
    if n_slices < 1:
        raise InputError(attrs_source, "slices", "at least one slice to prepare", n_slices)
    start = time.perf_counter()
    out = Path(out)
    with atomic_path(out) as tmp, create_hdf5(tmp) as f:
        f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "modality": modality.name,
                        "units": modality.units, "channels": modality.channels, "seed": seed,
                        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                        "tomoconsensus_version": package_version()})
        ids = f.create_dataset("slice_id", (n_slices,), dtype=_STR)
        patients = f.create_dataset("patient_id", (n_slices,), dtype=_STR)
        count = 0
        for i, result in enumerate(progress_bar(results, total=n_slices, desc=f"prepare {modality.name}",
                                                unit="slice", enabled=progress)):
            if i >= n_slices:
                raise ValueError(f"more than n_slices={n_slices} slices given")
            for name, image in result.images.items():
                _store(f, name, i, n_slices, image, result.slice_id, attrs_source)
            for key, value in result.measurement.items():
                if key not in f:
                    f.create_dataset(key, (n_slices,) + value.shape, dtype=value.dtype,
                                     chunks=(1,) + value.shape if value.ndim else None, compression="gzip")
                f[key][i] = value
            ids[i], patients[i] = result.slice_id, result.patient_id
            check_written(f)  # a full disk stops here, not after the last slice
            count += 1
        if count != n_slices:
            raise ValueError(f"expected {n_slices} slices, got {count}")
        # written last: a source may fill some (e.g. per-volume MR scale factors) while it yields
        for key, value in {**modality.attributes(), **(attrs or {})}.items():
            f.attrs[key] = _attr_value(value)
        names = sorted(k for k in _image_names(f))
    return PrepareSummary(out, n_slices, time.perf_counter() - start, out.stat().st_size, names)


def _store(f: h5py.File, name: str, index: int, n_slices: int, image: np.ndarray, slice_id: str, source) -> None:
    """Image ``name`` of slice ``index`` (float32, chunks of one slice); NaN/inf refused, never a silent NaN file."""
    if not np.all(np.isfinite(image)):
        raise InputError(source, f"{name} of slice {slice_id}", "a finite reconstruction (check the input's values "
                         "and scale and the reconstruction parameters)", "NaN or inf values")
    if name not in f:
        f.create_dataset(name, (n_slices,) + image.shape, dtype="float32", chunks=(1,) + image.shape,
                         compression="gzip", compression_opts=4, shuffle=True)
    f[name][index] = image


def _image_names(f: h5py.File) -> list[str]:
    names = [k for k in (*IMAGE_KEYS, "reference") if k in f]
    group = f.get("baselines")
    return names + ([f"baselines/{k}" for k in group] if isinstance(group, h5py.Group) else [])


def package_version() -> str:
    """The installed tomoconsensus version ("unknown" when run from a source tree without installing)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tomoconsensus")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class PreparedDataset:
    """A prepared file loaded into memory (NumPy arrays, float32).

    Attributes
    ----------
    x1, x2, x_est : ndarray (slices, channels, H, W)
    reference : ndarray or None
    baselines : dict of name -> ndarray
    slice_ids, patient_ids : list of str
    attrs : dict
    path : Path
    teacher : ndarray or None
        A teacher run's output (distillation target), where the file has one.
    """

    x1: np.ndarray
    x2: np.ndarray
    x_est: np.ndarray
    reference: np.ndarray | None
    baselines: dict[str, np.ndarray]
    slice_ids: list[str]
    patient_ids: list[str]
    attrs: dict[str, Any]
    path: Path
    teacher: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x1)

    @property
    def channels(self) -> int:
        return self.x1.shape[1]

    @property
    def modality(self) -> str:
        return str(self.attrs.get("modality", ""))

    def select(self, indices) -> PreparedDataset:
        """A subset of slices (e.g. a train/validation split)."""
        idx = np.asarray(indices)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return PreparedDataset(self.x1[idx], self.x2[idx], self.x_est[idx], pick(self.reference),
                               {k: v[idx] for k, v in self.baselines.items()},
                               [self.slice_ids[i] for i in idx], [self.patient_ids[i] for i in idx],
                               dict(self.attrs), self.path, pick(self.teacher))


def read_prepared(path: str | Path) -> PreparedDataset:
    """Load and validate a prepared file.

    Raises
    ------
    InputError
        If the file is missing, not HDF5, not a tomoconsensus prepared file, or has inconsistent shapes.
    """
    path = Path(path)
    with open_hdf5(path, "prepared HDF5 file (tomoconsensus prepare ...)") as f:
        if f.attrs.get("format") != FORMAT:
            raise InputError(path, "format", f"attribute format = '{FORMAT}'", f.attrs.get("format"))
        for key in IMAGE_KEYS + ("slice_id",):
            if key not in f:
                raise InputError(path, key, "this dataset (see docs/prepared-format.md)", "missing")
        arrays = {k: np.asarray(read_array(f, k, path), dtype=np.float32) for k in IMAGE_KEYS}
        shape = arrays["x1"].shape
        if len(shape) != 4 or 0 in shape:
            raise InputError(path, "x1", "shape (slices, channels, H, W) with at least one slice", shape)
        optional = {k: np.asarray(read_array(f, k, path), dtype=np.float32) for k in ("reference", "teacher")
                    if k in f}
        group = f.get("baselines", {})
        if not isinstance(group, (h5py.Group, dict)):
            raise InputError(path, "baselines", "a group of baseline images", "a dataset")
        baselines = {k: np.asarray(read_array(group, k, path), dtype=np.float32) for k in group}
        for name, arr in {**arrays, **optional, **{f"baselines/{k}": v for k, v in baselines.items()}}.items():
            if arr.shape != shape:
                raise InputError(path, name, f"shape {shape} like x1", arr.shape)
            require_finite(arr, path, name)
        ids = read_strings(f["slice_id"], path)
        patients = read_strings(f["patient_id"], path) if "patient_id" in f else ids
        for name, values in (("slice_id", ids), ("patient_id", patients)):
            if len(values) != shape[0]:
                raise InputError(path, name, f"{shape[0]} ids, one per slice", len(values))
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    return PreparedDataset(arrays["x1"], arrays["x2"], arrays["x_est"], optional.get("reference"), baselines,
                           ids, patients, attrs, path, optional.get("teacher"))


def read_measurement(path: str | Path) -> dict[str, np.ndarray]:
    """The ``/measurement/<name>`` arrays of a prepared file (empty dict where it has none)."""
    with open_hdf5(path, "prepared file") as f:
        group = f.get("measurement")
        if not isinstance(group, h5py.Group):
            return {}
        return {name: group[name][()] for name in group}

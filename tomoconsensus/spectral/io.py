"""Photon-counting CT count files (``prepare spectral --counts``), validated before any output is written.

Schema (HDF5)
-------------
``counts``      integer (slices, bins, views, channels) >= 0: raw counts of each energy bin, fan-beam
                views over 360 degrees in the geometry's order (``--geometry``)
``flat``        float (bins,) or (bins, channels) > 0: expected counts without an object (air scan),
                per detector element and view
``reference``   float (slices, bins, H, W), optional: clean images in bin HU/1000 (simulations)
``iodine_mg_per_ml``  float (slices, H, W), optional: true iodine map (simulations; for ROI checks)
``slice_id``, ``patient_id``  strings (slices,), optional
attributes      ``bin_edges_kev`` (bins + 1,) strictly increasing
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from tomoconsensus.atomic import atomic_path
from tomoconsensus.counts import as_counts
from tomoconsensus.errors import InputError, require_finite
from tomoconsensus.hdf5 import create_hdf5, open_hdf5, read_array, read_strings
from tomoconsensus.spectral.spectrum import check_bin_edges


@dataclass
class CountStack:
    """Validated bin counts (slices, bins, views, channels) and what goes with them (schema above)."""

    counts: np.ndarray
    flat: np.ndarray
    edges_kev: np.ndarray
    slice_ids: list[str]
    patient_ids: list[str]
    reference: np.ndarray | None = None
    iodine_mg_per_ml: np.ndarray | None = None


def _flat(values, bins: int, channels: int, path) -> np.ndarray:
    flat = np.asarray(values, dtype=np.float64)
    if flat.shape not in ((bins,), (bins, channels)):
        raise InputError(path, "flat", f"shape ({bins},) or ({bins}, {channels}): air counts per bin", flat.shape)
    require_finite(flat, path, "flat")
    if flat.min() <= 0:
        raise InputError(path, "flat", "air counts > 0 in every bin", float(flat.min()))
    return flat


def _optional(f: h5py.File, key: str, shape: tuple, path) -> np.ndarray | None:
    if key not in f:
        return None
    values = np.asarray(read_array(f, key, path), dtype=np.float32)
    if values.shape != shape:
        raise InputError(path, key, f"shape {shape}", values.shape)
    require_finite(values, path, key)
    return values


def read_counts(path: str | Path) -> CountStack:
    """Read and validate a count file (schema in the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "--counts", "an existing HDF5 count file", "not found")
    with open_hdf5(path, "photon-counting CT count file") as f:
        counts = as_counts(read_array(f, "counts", path, "integer counts (slices, bins, views, channels)"),
                           path, "counts")
        if counts.ndim != 4 or 0 in counts.shape:
            raise InputError(path, "counts", "shape (slices, bins, views, channels) with at least one slice",
                             counts.shape)
        n, bins, _, channels = counts.shape
        if "bin_edges_kev" not in f.attrs:
            raise InputError(path, "bin_edges_kev", f"an attribute with {bins + 1} energy-bin edges in keV", "missing")
        edges = check_bin_edges(f.attrs["bin_edges_kev"], path)
        if len(edges) != bins + 1:
            raise InputError(path, "bin_edges_kev", f"{bins + 1} edges for {bins} bins", len(edges))
        flat = _flat(read_array(f, "flat", path), bins, channels, path) if "flat" in f else None
        if flat is None:
            raise InputError(path, "flat", "air counts per bin (bins,) or (bins, channels)", "missing")
        ids = read_strings(f["slice_id"], path) if "slice_id" in f else [f"slice{i:04d}" for i in range(n)]
        patients = read_strings(f["patient_id"], path) if "patient_id" in f else [s.split("_")[0] for s in ids]
        if len(ids) != n or len(patients) != n:
            raise InputError(path, "slice_id / patient_id", f"{n} strings, one per slice", (len(ids), len(patients)))
        image = None
        if "reference" in f:
            image = np.asarray(read_array(f, "reference", path), dtype=np.float32).shape[2:]
        reference = _optional(f, "reference", (n, bins, *image), path) if image else None
        iodine = _optional(f, "iodine_mg_per_ml", (n, *image), path) if image else None
    return CountStack(counts, flat, edges, ids, patients, reference, iodine)


def write_counts(path: str | Path, stack: CountStack) -> Path:
    """Write a count stack as HDF5 (atomically), in the schema :func:`read_counts` reads."""
    path = Path(path)
    with atomic_path(path) as tmp, create_hdf5(tmp) as f:
        f.create_dataset("counts", data=stack.counts.astype(np.int32), compression="gzip", shuffle=True)
        f.create_dataset("flat", data=np.asarray(stack.flat, np.float64))
        for key in ("reference", "iodine_mg_per_ml"):
            value = getattr(stack, key)
            if value is not None:
                f.create_dataset(key, data=np.asarray(value, np.float32), compression="gzip")
        f.create_dataset("slice_id", data=stack.slice_ids, dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("patient_id", data=stack.patient_ids, dtype=h5py.string_dtype("utf-8"))
        f.attrs["bin_edges_kev"] = np.asarray(stack.edges_kev, np.float64)
    return path

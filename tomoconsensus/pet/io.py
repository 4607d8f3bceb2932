"""Reading and writing PET prompt files (HDF5 or .npz), validated before any output is written.

Prompt file schema (``prepare pet --prompts``; docs/pet.md)
----------------------------------------------------------
``prompts``         integer counts (slices, views, bins), >= 0: the raw prompt coincidences, 2-D
                    (direct or rebinned) parallel-beam sinograms, arc-corrected
``multiplicative``  float (slices, views, bins), > 0, optional (default 1): the factor ``m`` that
                    multiplies the activity's line integrals, sensitivity (normalisation, calibration)
                    x attenuation ``exp(-integral mu dl)``
``additive``        float (slices, views, bins), >= 0, optional (default 0): expected randoms + scatter
``delayed``         integer counts (slices, views, bins), >= 0, optional: a measured delayed-window
                    (randoms) sinogram; then ``additive`` holds scatter only. Thinned like the prompts
``listmode_bin``    int (events,), optional, instead of ``prompts``: one flat index per event into
                    (slices, views, bins) in C order; needs the attribute ``shape`` = (slices, views, bins)
``listmode_time_s`` float (events,), optional beside ``listmode_bin``: each event's time in s from the
                    acquisition start, in [0, ``duration_s``) (attribute ``duration_s`` > 0); needed by
                    the time-frame split (:mod:`tomoconsensus.pet.frames`)
``reference``       float (slices, N, N), optional: the clean image on the reconstruction grid
``slice_id``, ``patient_id``  strings (slices,), optional
attributes          ``angles_deg`` (views,) uniformly spaced over 180 degrees; ``bin_size_mm`` (> 0);
                    ``activity_units`` (str, optional): the unit of ``x`` defined by ``m``

The measurement model is ``prompts ~ Poisson(m * (A x) + additive)``, ``A x`` the line integrals of
the activity ``x`` in mm (ASTRA parallel projector on the grid of ``bin_size_mm`` bins).

In an .npz file attributes are arrays of the same names.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from tomoconsensus.atomic import atomic_path
from tomoconsensus.counts import as_counts
from tomoconsensus.errors import InputError, one_line, require_finite
from tomoconsensus.hdf5 import create_hdf5, open_hdf5, read_array, read_strings
from tomoconsensus.pet.limits import BYTES_PER_BIN, check_memory

#: Largest accepted bin pitch in mm (2-D PET bins are a few mm; a value like 1e300 is a unit or typing error).
MAX_BIN_MM = 1000.0
#: Units of x when the file does not name them: those fixed by E[prompts] = m * (A x) + additive.
DEFAULT_UNITS = "activity in prompts per mm of LOR per unit m (E[y] = m * line integral of x + additive)"


@dataclass
class ListMode:
    """List-mode events with times, kept for the time-frame split.

    Attributes
    ----------
    bin_index : ndarray (events,), int64, flat index into (slices, views, bins)
    time_s : ndarray (events,), float64, s from the acquisition start, in [0, duration_s)
    duration_s : float, > 0
    """

    bin_index: np.ndarray
    time_s: np.ndarray
    duration_s: float


@dataclass
class PromptStack:
    """Validated prompt sinograms and their corrections.

    Attributes
    ----------
    prompts : ndarray (slices, views, bins), int64, >= 0
    multiplicative : ndarray (slices, views, bins), float64, > 0
    additive : ndarray (slices, views, bins), float64, >= 0
    angles_deg : ndarray (views,)
    bin_size_mm : float
    activity_units : str
    slice_ids, patient_ids : list of str
    reference : ndarray (slices, N, N) float32 or None
    delayed : ndarray (slices, views, bins) int64 or None
    listmode : ListMode or None
        The events and their times when the file has ``listmode_time_s`` (``prompts`` is their histogram).
    """

    prompts: np.ndarray
    multiplicative: np.ndarray
    additive: np.ndarray
    angles_deg: np.ndarray
    bin_size_mm: float
    activity_units: str = DEFAULT_UNITS
    slice_ids: list[str] | None = None
    patient_ids: list[str] | None = None
    reference: np.ndarray | None = None
    delayed: np.ndarray | None = None
    listmode: ListMode | None = None

    def __post_init__(self) -> None:
        n = len(self.prompts)
        self.slice_ids = self.slice_ids or [f"slice{i:04d}" for i in range(n)]
        self.patient_ids = self.patient_ids or [s.split("_")[0] for s in self.slice_ids]


def check_factor(values, shape: tuple, source, field: str, positive: bool) -> np.ndarray:
    """A correction sinogram of ``shape``, finite, > 0 (``positive``) or >= 0."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape != shape:
        raise InputError(source, field, f"shape {shape} like 'prompts' (slices, views, bins)", values.shape)
    require_finite(values, source, field)
    bad = values <= 0 if positive else values < 0
    if np.any(bad):
        raise InputError(source, field, "values > 0" if positive else "values >= 0",
                         f"{int(bad.sum())} values out of range, minimum {values.min():g}")
    return values


def check_angles(angles_deg, n_views: int, source) -> np.ndarray:
    """View angles: ``n_views`` values uniformly spaced over 180 degrees (step 180 / views)."""
    angles = np.atleast_1d(np.asarray(angles_deg))
    if angles.dtype.kind not in "iuf":
        raise InputError(source, "angles_deg", f"{n_views} numbers (view angles in degrees)", f"dtype {angles.dtype}")
    angles = angles.astype(np.float64)
    if angles.shape != (n_views,):
        raise InputError(source, "angles_deg", f"{n_views} angles, one per view", angles.shape)
    require_finite(angles, source, "angles_deg")
    step = np.diff(angles)
    if n_views > 1 and np.abs(step - 180.0 / n_views).max() > 1e-3 * 180.0 / n_views:
        raise InputError(source, "angles_deg", f"uniform steps of 180/{n_views} = {180.0 / n_views:g} degrees "
                         "(parallel geometry over 180 degrees)", f"steps from {step.min():g} to {step.max():g}")
    return angles


class _Reader:
    """Uniform access to HDF5 datasets/attributes and .npz arrays."""

    def __init__(self, path: Path):
        self.path = path
        if path.suffix.lower() == ".npz":
            try:
                self.npz = np.load(path, allow_pickle=False)
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise InputError(path, "file", "a readable .npz prompt file", str(exc)) from None
            self.h5 = None
        else:
            self.h5, self.npz = open_hdf5(path, "HDF5 prompt file"), None

    def has(self, key: str) -> bool:
        return key in (self.npz.files if self.npz is not None else self.h5)

    def get(self, key: str):
        """The array ``key``: object arrays (pickles, refused by ``allow_pickle=False``), truncated or corrupt
        members and HDF5 groups raise InputError."""
        try:
            if self.npz is not None:
                return self.npz[key]
            return read_array(self.h5, key, self.path, "a numeric dataset", complex_ok=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(self.path, key, "a numeric array (no object arrays: pickles are not loaded) in an intact "
                             "file", one_line(str(exc))[:120]) from None

    def attr(self, key: str):
        try:
            if self.npz is not None:
                value = self.get(key) if key in self.npz.files else None
            else:
                value = self.h5.attrs.get(key)
        except (UnicodeDecodeError, OSError, TypeError) as exc:
            raise InputError(self.path, key, "an attribute readable as numbers or UTF-8 text", type(exc).__name__) \
                from None
        if isinstance(value, np.ndarray) and value.dtype.kind == "S" and value.size == 1:
            value = value.item()
        try:
            if isinstance(value, bytes):
                return value.decode("utf-8")
            if isinstance(value, str):
                value.encode("utf-8")  # h5py keeps undecodable bytes as surrogates
        except UnicodeError:
            raise InputError(self.path, key, "UTF-8 text", "undecodable bytes") from None
        return value

    def strings(self, key: str) -> list[str]:
        if self.npz is not None:
            return [str(s) for s in np.atleast_1d(self.get(key))]
        return read_strings(self.h5[key], self.path)

    def close(self) -> None:
        (self.npz if self.npz is not None else self.h5).close()


def _read_counts(r: _Reader) -> tuple[np.ndarray, ListMode | None]:
    """The prompt histogram (slices, views, bins) and, for list-mode with times, the events."""
    path = r.path
    if r.has("prompts"):
        counts = as_counts(r.get("prompts"), path, "prompts")
        if counts.ndim != 3:
            raise InputError(path, "prompts", "shape (slices, views, bins)", counts.shape)
        if r.has("listmode_time_s"):
            raise InputError(path, "listmode_time_s", "event times only beside 'listmode_bin' (not 'prompts')",
                             "a histogram 'prompts'")
        return counts, None
    if r.has("listmode_bin"):
        shape = _histogram_shape(r.attr("shape"), path)
        index = as_counts(r.get("listmode_bin"), path, "listmode_bin").ravel()
        if index.size and index.max() >= np.prod(shape):
            raise InputError(path, "listmode_bin", f"flat bin indices < {int(np.prod(shape))}", int(index.max()))
        counts = np.bincount(index, minlength=int(np.prod(shape))).reshape(shape)
        return counts, (_read_times(r, index) if r.has("listmode_time_s") else None)
    keys = sorted(r.npz.files if r.npz is not None else r.h5.keys())
    raise InputError(path, "prompts", "a dataset 'prompts' (slices, views, bins) or 'listmode_bin'", keys)


def _histogram_shape(shape, path: Path) -> tuple[int, int, int]:
    """The list-mode attribute ``shape``: three integers >= 1 whose histogram fits in memory."""
    values = np.atleast_1d(np.asarray(shape)) if shape is not None else np.zeros(0)
    if values.shape != (3,) or values.dtype.kind not in "iuf" or not np.all(np.isfinite(values)) \
            or np.any(values < 1) or np.any(values != np.round(values)):
        raise InputError(path, "shape", "attribute (slices, views, bins): three integers >= 1 beside 'listmode_bin'",
                         shape if values.size <= 3 else values.shape)
    dims = tuple(int(v) for v in values)
    check_memory(float(np.prod(np.asarray(dims, dtype=np.float64))) * BYTES_PER_BIN, path, "shape",
                 f"a {dims} prompt histogram")
    return dims


def _positive_scalar(value, path: Path, field: str, what: str, upper: float):
    """One finite number in (0, upper] (an attribute: text, several values and 1e300 are refused)."""
    values = np.atleast_1d(np.asarray(value)) if value is not None else np.zeros(0)
    ok = values.size == 1 and values.dtype.kind in "iuf" and np.isfinite(values[0]) and 0 < values[0] <= upper
    if not ok:
        got = "missing" if value is None else (values[0].item() if values.size == 1 else f"{values.size} values")
        raise InputError(path, field, f"one positive {what}, at most {upper:g} (attribute)", got)
    return float(values[0])


def _read_times(r: _Reader, index: np.ndarray) -> ListMode:
    """``listmode_time_s`` (one finite time in [0, duration_s) per event) and the attribute ``duration_s``."""
    path = r.path
    duration = r.attr("duration_s")
    try:
        duration = float(np.asarray(duration)) if duration is not None else None
    except (TypeError, ValueError):
        raise InputError(path, "duration_s", "a positive acquisition duration in s (attribute)", duration) from None
    if duration is None or not np.isfinite(duration) or duration <= 0:
        raise InputError(path, "duration_s", "a positive acquisition duration in s (attribute) beside "
                         "'listmode_time_s'", "missing" if duration is None else duration)
    times = np.asarray(r.get("listmode_time_s"))
    if times.dtype.kind not in "iuf":
        raise InputError(path, "listmode_time_s", "numbers (event times in s)", str(times.dtype))
    times = times.astype(np.float64).ravel()
    if times.shape != index.shape:
        raise InputError(path, "listmode_time_s", f"{index.size} times, one per event of 'listmode_bin'", times.size)
    require_finite(times, path, "listmode_time_s")
    bad = (times < 0) | (times >= duration)
    if np.any(bad):
        raise InputError(path, "listmode_time_s", f"times in [0, duration_s = {duration:g}) s",
                         f"{int(bad.sum())} events outside, from {times.min():g} to {times.max():g} s")
    return ListMode(index.astype(np.int64), times, duration)


def read_prompts(path: str | Path) -> PromptStack:
    """Read and validate a prompt file (schema in the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "--prompts", "an existing .h5 or .npz prompt file", "not found")
    r = _Reader(path)
    try:
        prompts, listmode = _read_counts(r)
        if not prompts.any():
            raise InputError(path, "prompts" if r.has("prompts") else "listmode_bin", "at least one prompt (nothing "
                             "to reconstruct: the additive terms alone would give a negative image)", "none")
        shape = prompts.shape
        mult = (check_factor(r.get("multiplicative"), shape, path, "multiplicative", True)
                if r.has("multiplicative") else np.ones(shape))
        add = check_factor(r.get("additive"), shape, path, "additive", False) if r.has("additive") else np.zeros(shape)
        delayed = as_counts(r.get("delayed"), path, "delayed") if r.has("delayed") else None
        if delayed is not None and delayed.shape != shape:
            raise InputError(path, "delayed", f"shape {shape} like 'prompts' (slices, views, bins)", delayed.shape)
        if r.attr("angles_deg") is None:
            raise InputError(path, "angles_deg", f"an attribute with {shape[1]} view angles in degrees", "missing")
        angles = check_angles(r.attr("angles_deg"), shape[1], path)
        bin_size = _positive_scalar(r.attr("bin_size_mm"), path, "bin_size_mm", "bin size in mm", MAX_BIN_MM)
        ids = r.strings("slice_id") if r.has("slice_id") else None
        patients = r.strings("patient_id") if r.has("patient_id") else None
        for key, values in (("slice_id", ids), ("patient_id", patients)):
            if values is not None and len(values) != shape[0]:
                raise InputError(path, key, f"{shape[0]} strings, one per slice", len(values))
        ref = None
        if r.has("reference"):
            ref = np.asarray(r.get("reference"), dtype=np.float32)
            if ref.ndim != 3 or len(ref) != shape[0] or ref.shape[1] != ref.shape[2]:
                raise InputError(path, "reference", f"shape ({shape[0]}, N, N)", ref.shape)
            require_finite(ref, path, "reference")
        units = r.attr("activity_units")
        if isinstance(units, np.ndarray) and units.dtype.kind == "U" and units.size == 1:
            units = str(units.item())
        if units is not None and not isinstance(units, str):
            raise InputError(path, "activity_units", "UTF-8 text naming the unit of x", type(units).__name__)
        units = units or DEFAULT_UNITS
    finally:
        r.close()
    return PromptStack(prompts, mult, add, angles, bin_size, units, ids, patients, ref, delayed, listmode)


def write_prompts(path: str | Path, stack: PromptStack) -> Path:
    """Write a prompt stack as HDF5 (atomically), in the schema :func:`read_prompts` reads.

    A stack with ``listmode`` events is written as list-mode (``listmode_bin``, ``listmode_time_s``,
    attributes ``shape`` and ``duration_s``), else as the histogram ``prompts``.
    """
    path = Path(path)
    with atomic_path(path) as tmp, create_hdf5(tmp) as f:
        if stack.listmode is None:
            f.create_dataset("prompts", data=stack.prompts.astype(np.int32), compression="gzip", shuffle=True)
        else:
            f.create_dataset("listmode_bin", data=stack.listmode.bin_index.astype(np.int64), compression="gzip")
            f.create_dataset("listmode_time_s", data=stack.listmode.time_s.astype(np.float64), compression="gzip")
            f.attrs.update(shape=np.asarray(stack.prompts.shape, np.int64), duration_s=stack.listmode.duration_s)
        f.create_dataset("multiplicative", data=stack.multiplicative.astype(np.float32), compression="gzip")
        f.create_dataset("additive", data=stack.additive.astype(np.float32), compression="gzip")
        if stack.delayed is not None:
            f.create_dataset("delayed", data=stack.delayed.astype(np.int32), compression="gzip", shuffle=True)
        if stack.reference is not None:
            f.create_dataset("reference", data=stack.reference.astype(np.float32), compression="gzip")
        f.create_dataset("slice_id", data=stack.slice_ids, dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("patient_id", data=stack.patient_ids, dtype=h5py.string_dtype("utf-8"))
        f.attrs.update(angles_deg=np.asarray(stack.angles_deg, dtype=np.float64), bin_size_mm=stack.bin_size_mm,
                       activity_units=stack.activity_units)
    return path

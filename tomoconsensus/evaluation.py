"""Evaluate denoised results and the no-training baselines against the reference.

The baselines stored in a prepared file are included automatically: ``x_est`` (the linear
reconstruction of all the data) and every ``/baselines/<name>``, named for the tables by the
modality's presentation (:func:`tomoconsensus.presenters.presenter`, found through the registry).
Metrics, units and windows are the presentation's; in addition, the standard deviation inside a uniform region of
interest (chosen automatically where the reference is flattest) shows over-smoothing in numbers:
a denoiser whose ROI std is far *below* the reference's removes texture, not only noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tomoconsensus.data.denoised import read_denoised
from tomoconsensus.data.prepared import PreparedDataset
from tomoconsensus.data.sets import PathsLike, read_prepared_many
from tomoconsensus.errors import InputError
from tomoconsensus.presenters import presenter, slice_metrics


@dataclass
class Evaluation:
    """Per-slice metrics of every method on one test set.

    Attributes
    ----------
    modality : str
    slice_ids : list of str
    images : dict method -> ndarray (slices, C, H, W) in prepared units
    per_slice : dict method -> list of dict metric -> value
    roi : list of (row, col, size)
        Per slice, the uniform region used for ``roi_std``.
    reference_roi_std : list of float
        Per slice, the std of the reference itself in that region (what a texture-preserving
        denoiser should approach).
    """

    modality: str
    slice_ids: list[str]
    reference: np.ndarray
    images: dict[str, np.ndarray]
    per_slice: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    roi: list[tuple[int, int, int]] = field(default_factory=list)
    reference_roi_std: list[float] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        return list(self.images)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """method -> metric -> {mean, std}."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for method, rows in self.per_slice.items():
            out[method] = {k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows]))}
                           for k in rows[0]}
        return out


def display_units(modality: str, image: np.ndarray) -> np.ndarray:
    """A slice (C, H, W) in prepared units -> a 2-D image for display and ROI statistics (display units)."""
    return presenter(modality).display(image)


def uniform_roi(reference_2d: np.ndarray, size: int, value_range: tuple[float, float] | None) -> tuple[int, int, int]:
    """Corner and size of the ``size x size`` window with the lowest std (mean inside ``value_range``)."""
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(reference_2d, (size, size))[::2, ::2]
    std, mean = windows.std(axis=(-1, -2)), windows.mean(axis=(-1, -2))
    if value_range is not None:
        std = np.where((mean >= value_range[0]) & (mean <= value_range[1]), std, np.inf)
    if not np.isfinite(std).any():
        std = windows.std(axis=(-1, -2))
    r, c = np.unravel_index(np.argmin(std), std.shape)
    return int(2 * r), int(2 * c), size


def evaluate(data: PreparedDataset | PathsLike, results: dict[str, str | Path] | None = None) -> Evaluation:
    """Metrics of the baselines in ``data`` (a dataset, or prepared files and folders of them) and of each
    ``name -> denoised.h5`` in ``results``."""
    if not isinstance(data, PreparedDataset):
        data = read_prepared_many(data)
    if data.reference is None:
        raise InputError(data.path, "reference", "a reference image to evaluate against "
                         "(prepare the test set from clean images)", "missing")
    p = presenter(data.modality)
    names = p.baseline_names(data.attrs)
    images = {names.get("x_est", "x_est"): data.x_est}
    images.update({names.get(k, k): v for k, v in data.baselines.items()})
    for name, path in (results or {}).items():
        if name in images:
            raise InputError("--results", name,
                             f"a name other than the baselines and other results ({', '.join(images)})", "already used")
        denoised, ids, attrs = read_denoised(path)
        for key in ("modality", "units"):
            if key in attrs and str(attrs[key]) != str(data.attrs.get(key, "")):
                raise InputError(path, key, f"{data.attrs.get(key)!r} like {data.path}", attrs.get(key))
        if ids != data.slice_ids:
            raise InputError(path, "slice_id", f"the slices of {data.path} in the same order", ids[:3])
        if denoised.shape != data.reference.shape:
            raise InputError(path, "denoised", f"shape {data.reference.shape} like the reference of {data.path}",
                             denoised.shape)
        images[name] = denoised
    ev = Evaluation(data.modality, data.slice_ids, data.reference, images)
    size = max(8, data.reference.shape[-1] // 16)
    for i in range(len(data)):
        ref_2d = display_units(data.modality, data.reference[i])
        r, c, s = uniform_roi(ref_2d, size, p.roi_value_range(ref_2d))
        ev.roi.append((r, c, s))
        ev.reference_roi_std.append(float(ref_2d[r:r + s, c:c + s].std()))
    for method, stack in images.items():
        rows = []
        for i in range(len(data)):
            row = slice_metrics(data.modality, stack[i], data.reference[i])
            r, c, s = ev.roi[i]
            row["roi_std"] = float(display_units(data.modality, stack[i])[r:r + s, c:c + s].std())
            rows.append(row)
        ev.per_slice[method] = rows
    return ev

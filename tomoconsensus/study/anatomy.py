"""The anatomy shipped with the package and the demos' patient splits (one module, every demo's patients).

Two stacks of real, clean CT slices in HU (``tomoconsensus/embedded``, CC BY, ATTRIBUTION.md):

* :data:`SERIES`: slices of 12 TCIA series (12 patients) on the demo grid (128^2, 3 mm pixels); 11
  patients train, :data:`SERIES_VAL_PATIENTS` validates;
* :data:`COVID`: 12 axial slices of 6 COVID-19-NY-SBU patients, another collection that no network
  trains on: the test patients (all of them for the demos on the series, :data:`COVID_TEST_PATIENTS`
  where the training anatomy is also drawn from this collection).

A split is a list of ``(name, slices, seed offset)`` for ``train``, ``val`` and ``test``; the offsets
(0, 1, 2) seed each split's simulated noise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EMBEDDED = Path(__file__).resolve().parents[1] / "embedded"
#: 12 COVID-19-NY-SBU slices of 6 patients: the test patients.
COVID = EMBEDDED / "tcia_covid19_ny_sbu_axial_hu.npz"
#: Slices of 12 TCIA series (12 patients) on the demo grid: the training and validation anatomy.
SERIES = EMBEDDED / "tcia_series_demo_hu.npz"
SERIES_VAL_PATIENTS = ("LIDC-IDRI-0001",)
#: A split of the COVID-19-NY-SBU patients alone (3 train, 1 validation, 2 test).
COVID_TEST_PATIENTS = ("A056642", "A058062")
COVID_VAL_PATIENTS = ("A048383",)


@dataclass(frozen=True)
class Slices:
    """Clean slices in HU with their patients.

    Attributes
    ----------
    hu : ndarray, shape (slices, N, N), float32
    pixel_spacing_mm : ndarray, shape (slices,)
    slice_ids, patient_ids : list of str
        The stored file name without ``.dcm``; its part before the first ``_``.
    """

    hu: np.ndarray
    pixel_spacing_mm: np.ndarray
    slice_ids: list[str]
    patient_ids: list[str]


Split = list[tuple[str, Slices, int]]


def read_slices(path: Path) -> Slices:
    """One of the embedded stacks (``hu``, ``pixel_spacing_mm`` (slices[, 2]), ``files``)."""
    with np.load(path) as data:
        hu = data["hu"].astype(np.float32)
        spacing = np.asarray(data["pixel_spacing_mm"], float)
        files = [str(f) for f in data["files"]]
    spacing = spacing[:, 0] if spacing.ndim == 2 else spacing
    ids = [f[:-4] if f.lower().endswith(".dcm") else f for f in files]
    return Slices(hu, spacing, ids, [i.split("_")[0] for i in ids])


def subset(stack: Slices, keep: Callable[[str], bool], among: Iterable[int] | None = None) -> Slices:
    """The slices (of ``among``, default all) whose patient passes ``keep``."""
    idx = [i for i in (range(len(stack.hu)) if among is None else among)
           if i < len(stack.hu) and keep(stack.patient_ids[i])]
    return Slices(stack.hu[idx], stack.pixel_spacing_mm[idx], [stack.slice_ids[i] for i in idx],
                  [stack.patient_ids[i] for i in idx])


def first(stack: Slices, n: int) -> Slices:
    """The first ``n`` slices."""
    return subset(stack, lambda p: True, range(min(n, len(stack.hu))))


def evenly_spaced(stack: Slices, per_patient: int) -> Slices:
    """Up to ``per_patient`` slices of each patient, evenly spaced through its (sorted) slices."""
    idx: list[int] = []
    for patient in dict.fromkeys(stack.patient_ids):
        own = [i for i, p in enumerate(stack.patient_ids) if p == patient]
        take = np.unique(np.linspace(0, len(own) - 1, min(per_patient, len(own))).round().astype(int))
        idx += [own[t] for t in take]
    return subset(stack, lambda p: True, idx)


def series_split(train_per_patient: int, val_slices: int, test_slices: int) -> Split:
    """Train and validation patients from :data:`SERIES` (evenly spaced slices per patient), the first
    ``test_slices`` of :data:`COVID` as test."""
    series = read_slices(SERIES)
    train = evenly_spaced(subset(series, lambda p: p not in SERIES_VAL_PATIENTS), train_per_patient)
    val = evenly_spaced(subset(series, lambda p: p in SERIES_VAL_PATIENTS), val_slices)
    return [("train", train, 0), ("val", val, 1), ("test", first(read_slices(COVID), test_slices), 2)]


def nested_split(pool: tuple[int, int, int], train_per_patient: int, val_slices: int, test_slices: int) -> Split:
    """Fewer slices of the patients of ``series_split(*pool)``: ``train_per_patient`` evenly spaced
    among each training patient's pool slices, the first ``val_slices`` and ``test_slices`` of the others."""
    limits = {"val": val_slices, "test": test_slices}
    return [(name, evenly_spaced(sub, train_per_patient) if name == "train" else first(sub, limits[name]), offset)
            for name, sub, offset in series_split(*pool)]


def covid_split() -> list[tuple[str, Slices, int]]:
    """All slices of :data:`COVID` by patient: 3 train, :data:`COVID_VAL_PATIENTS`, :data:`COVID_TEST_PATIENTS`."""
    stack, held_out = read_slices(COVID), COVID_TEST_PATIENTS + COVID_VAL_PATIENTS
    return [("train", subset(stack, lambda p: p not in held_out), 0),
            ("val", subset(stack, lambda p: p in COVID_VAL_PATIENTS), 1),
            ("test", subset(stack, lambda p: p in COVID_TEST_PATIENTS), 2)]

"""Patients of prepared files: training and held-out data must not share one.

A choice made on a validation patient who is also a training patient (or a test patient who
validated a run) is a choice made on data the network has seen: its numbers are optimistic and
cannot be trusted. Patients are compared by the ``patient_id`` of every slice.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tomoconsensus.errors import InputError


def shared_patients(a: Iterable[str], b: Iterable[str]) -> list[str]:
    """Patient ids present in both ``a`` and ``b``, sorted."""
    return sorted(set(a) & set(b))


def check_disjoint_patients(train_ids: Iterable[str], held_out_ids: Iterable[str], held_out_source: str | Path,
                            train_source: str | Path, role: str = "validation") -> None:
    """InputError naming the held-out file and up to three shared patients if any patient is in both."""
    shared = shared_patients(train_ids, held_out_ids)
    if shared:
        shown = ", ".join(shared[:3]) + (f" and {len(shared) - 3} more" if len(shared) > 3 else "")
        raise InputError(held_out_source, "patient_id", f"{role} patients that are not in the training data "
                         f"{train_source} (choices made on seen patients cannot be trusted)",
                         f"{len(shared)} shared: {shown}")

"""What a run was trained on: ``run_info.json`` in the run folder.

Applying a network to images it was not trained for gives wrong output without any error: a CT
network trained on 3 mm pixels sees a 0.7 mm image as a different, smoother object, and an MR
network (2 channels, real and imaginary) cannot take a CT image at all. So every run records what
its training data were, and ``denoise --images`` checks a new series against it::

    {
      "training_data": {"path": ..., "modality": "ct", "units": "HU/1000", "channels": 1,
                        "image_size": [H, W], "pixel_size_mm": 3.0, "geometry_name": ...,
                        "slices": N, "tomoconsensus_version": ..., "patients": [...]},
      "validation_data": {"path": ..., "slices": N, "patients": [...]},   # with --val
      "teacher": {"run_dir": ..., "method": ..., "variant": ..., "config_sha256": ..., "step": ...,
                  "model_sha256": ...}   # distilled runs (model.pt's SHA-256: distill --resume checks it)
    }

``pixel_size_mm`` comes from the prepared file's geometry (CT); it is ``null`` where the modality
has no pixel size recorded (MR k-space).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tomoconsensus.atomic import write_text_atomic
from tomoconsensus.data.prepared import PreparedDataset
from tomoconsensus.errors import InputError
from tomoconsensus.tomo.geometry import geometry_from_toml_text

FILE = "run_info.json"
#: Prepared-file attributes (written by :mod:`tomoconsensus.distillation`) that name a teacher run.
TEACHER_ATTRS = {"teacher_run_dir": "run_dir", "teacher_method": "method", "teacher_variant": "variant",
                 "teacher_config_sha256": "config_sha256", "teacher_step": "step",
                 "teacher_model_sha256": "model_sha256"}


def pixel_size_mm(attrs: dict[str, Any]) -> float | None:
    """Pixel size of a prepared file's images (mm), from its geometry; None if it records none."""
    if "pixel_size_mm" in attrs:
        return float(attrs["pixel_size_mm"])
    text = attrs.get("geometry_toml")
    if not text:
        return None
    return float(geometry_from_toml_text(str(text)).pixel_size_mm)


def describe_training_data(data: PreparedDataset, val: PreparedDataset | None = None) -> dict[str, Any]:
    """The ``run_info.json`` content for a run trained on ``data`` (validated on ``val``)."""
    info: dict[str, Any] = {"training_data": {
        "path": str(Path(data.path).resolve()), "modality": data.modality, "units": str(data.attrs.get("units", "")),
        "channels": data.channels, "image_size": list(data.x1.shape[2:]), "pixel_size_mm": pixel_size_mm(data.attrs),
        "geometry_name": str(data.attrs.get("geometry_name", "")), "slices": len(data),
        "tomoconsensus_version": str(data.attrs.get("tomoconsensus_version", "")),
        "patients": sorted(set(data.patient_ids))}}
    if val is not None:
        info["validation_data"] = {"path": str(Path(val.path).resolve()), "slices": len(val),
                                   "patients": sorted(set(val.patient_ids))}
    teacher = {key: data.attrs[attr] for attr, key in TEACHER_ATTRS.items() if attr in data.attrs}
    if teacher:
        info["teacher"] = {k: (int(v) if k == "step" else str(v)) for k, v in teacher.items()}
    return info


def write_run_info(run_dir: str | Path, data: PreparedDataset, val: PreparedDataset | None = None) -> Path:
    """Write ``run_info.json`` (atomically)."""
    return write_text_atomic(Path(run_dir) / FILE, json.dumps(describe_training_data(data, val), indent=2) + "\n")


def read_run_info(run_dir: str | Path) -> dict[str, Any]:
    """``run_info.json`` of a run; a run trained before it existed raises InputError naming the file."""
    path = Path(run_dir) / FILE
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "file", "the record of the training data (runs trained with this version of "
                         "tomoconsensus write it; retrain or distil the run)", "missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, "file", "valid JSON", str(exc)) from None
    if not isinstance(info, dict) or not isinstance(info.get("training_data"), dict):
        got = type(info if not isinstance(info, dict) else info.get("training_data")).__name__
        raise InputError(path, "training_data", "a JSON object with the table training_data (written by train)", got)
    return info


def seen_patient_warnings(run_dir: str | Path, test_patients: list[str], name: str) -> list[str]:
    """One-line warnings when patients of an evaluated file trained or validated the run ``run_dir``.

    Runs without ``run_info.json`` or without recorded patients (older versions) give no warning.
    """
    try:
        info = read_run_info(run_dir)
    except InputError:
        return []
    out = []
    for role, key in (("trained", "training_data"), ("validated (chose the epoch of)", "validation_data")):
        seen = sorted(set(test_patients) & set((info.get(key) or {}).get("patients", [])))
        if seen:
            out.append(f"warning: {len(seen)} evaluated patient(s) {role} run {name} ({', '.join(seen[:3])}"
                       f"{' ...' if len(seen) > 3 else ''}): its numbers on them are not held-out results")
    return out

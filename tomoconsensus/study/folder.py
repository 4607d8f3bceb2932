"""The demo's folder: which files are the demo's, and what ``--overwrite`` may remove.

A demo folder (``demo_out/<modality>``) records its modality and protocol in ``demo_protocol.json``.
A rerun with the same protocol reuses its prepared files and finished runs; another protocol
(``--quick`` then the full demo) is refused unless ``--overwrite``, which removes only the files the
demo writes (:func:`demo_files`): the marker, the prepared and simulated files of the marker's
modality (``<modality>_<split>.h5`` and ``<modality>_<split>_<what>.h5|npz``, e.g. a test split's
prompts or regions), the denoised outputs (``denoised_*.h5``), the run files in ``runs/<method>/`` and
the report files in ``report/`` (the report's and ``<modality>_quality.md|json``). Anything else a user
put there (``my_analysis.txt``, a file in ``report/``) is kept, with the folders that hold it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from tomoconsensus.atomic import CLAIM_NAME, TEMP_NAME, write_text_atomic
from tomoconsensus.errors import InputError
from tomoconsensus.learn.runs import LOCK_NAME, RUN_FILES, RUN_INPUTS
from tomoconsensus.report import REPORT_FILES

MARKER = "demo_protocol.json"
#: Files any demo writes at the top of its folder.
TOP_FILES = re.compile(r"^(demo_protocol\.json|denoised_[A-Za-z0-9_.]+\.h5)$")
#: Files the demo (train, distill) writes in ``runs/<method>/``.
RUN_NAMES = frozenset(RUN_FILES) | frozenset(RUN_INPUTS) | {LOCK_NAME}


def _transient(name: str) -> bool:
    return bool(TEMP_NAME.match(name) or CLAIM_NAME.match(name))


def _files_in(folder: Path, names) -> list[Path]:
    if not folder.is_dir() or folder.is_symlink():
        return []
    return [p for p in folder.iterdir() if p.is_file() and (p.name in names or _transient(p.name))]


def _modality(out_dir: Path) -> str | None:
    """The modality recorded in the folder's marker (None without a readable one)."""
    try:
        modality = json.loads((out_dir / MARKER).read_text()).get("modality")
    except (OSError, ValueError, AttributeError):
        return None
    return modality if isinstance(modality, str) and modality.isidentifier() else None


def _own_files(modality: str | None) -> tuple[re.Pattern, frozenset[str]]:
    """The top-level pattern and the report names of a demo of ``modality``."""
    if modality is None:
        return TOP_FILES, frozenset(REPORT_FILES)
    own = re.compile(rf"^{re.escape(modality)}_(train|val|test)(_[a-z]+)?\.(h5|npz)$")
    top = re.compile(f"{TOP_FILES.pattern}|{own.pattern}")
    return top, frozenset(REPORT_FILES) | {f"{modality}_quality.{ext}" for ext in ("json", "md")}


def demo_files(out_dir: Path) -> list[Path]:
    """Every file in ``out_dir`` that the demo of the marker's modality writes (module docstring); nothing else."""
    top, report = _own_files(_modality(out_dir))
    files = [p for p in out_dir.iterdir() if p.is_file() and (top.match(p.name) or _transient(p.name))]
    files += _files_in(out_dir / "report", report)
    runs = out_dir / "runs"
    if runs.is_dir() and not runs.is_symlink():
        for run in runs.iterdir():
            files += _files_in(run, RUN_NAMES)
            for name in RUN_INPUTS:  # teacher copies of several files: teacher_train/NNNNN_NAME.h5
                copies = run / name
                if copies.is_dir() and not copies.is_symlink():
                    files += [p for p in copies.iterdir() if p.is_file() and p.suffix == ".h5"]
    return sorted(files)


def clear_demo_folder(out_dir: Path) -> list[Path]:
    """Remove the demo's own files and the folders they leave empty; returns what was kept (the user's)."""
    for path in demo_files(out_dir):
        path.unlink(missing_ok=True)
    runs = out_dir / "runs"
    run_dirs = sorted(runs.iterdir()) if runs.is_dir() else []
    inputs = [run / name for run in run_dirs for name in RUN_INPUTS]
    for folder in [*inputs, *run_dirs, runs, out_dir / "report"]:
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()
    return sorted(out_dir.rglob("*"))


def claim_demo_folder(out_dir: Path, modality: str, protocol: Any, overwrite: bool = False) -> None:
    """Make ``out_dir`` the demo's own folder, refusing to mix protocols or to touch a user's files.

    A non-empty folder without the marker is never written into; one with another protocol's marker
    is refused unless ``overwrite``, which removes only the demo's own files (:func:`clear_demo_folder`).
    """
    marker = out_dir / MARKER
    record = json.dumps({"modality": modality, "protocol": dataclasses.asdict(protocol)}, sort_keys=True, default=str)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "--out", "a folder for the demo's files", "an existing file")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not marker.exists():
            raise InputError(out_dir, "--out", "an empty or new folder (or one written by this demo)",
                             "a non-empty folder that is not a demo folder: choose another --out")
        if marker.read_text() != record:
            if not overwrite:
                raise InputError(out_dir, MARKER, "the same demo protocol to reuse its runs",
                                 "another protocol (e.g. --quick): choose another --out or add --overwrite")
            kept = [p for p in clear_demo_folder(out_dir) if p.is_file()]
            if kept:
                print(f"demo: removed the earlier demo's files from {out_dir}; kept {len(kept)} other file(s): "
                      + ", ".join(str(p.relative_to(out_dir)) for p in kept[:5]))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(marker, record)

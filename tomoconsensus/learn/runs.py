"""Run folders: what a new, resumed or repeated ``train`` may do with them, and the run lock.

* A new run needs a folder that does not exist or is empty; ``overwrite`` starts an existing run
  folder again from scratch (only the run's own files are removed, never other files).
* ``resume`` needs an interrupted run (``checkpoint.pt`` present). A finished run (``model.pt`` and
  ``summary.json`` present) is final: resuming it would replace the selected model.
* On resume the whole resolved configuration and the data files must be those of the checkpoint,
  except fields that do not change the result (:data:`RESUME_FREE`).
* While a run trains, ``.tomoconsensus.lock`` in its folder is locked (``fcntl.flock``, a claim of
  :mod:`tomoconsensus.claims`) and holds the PID: a second training into the same folder is refused
  "in use". The kernel releases the lock when the process ends, even by ``kill -9``; the file is
  removed on release (one left by ``kill -9`` is not counted as content of the folder), and so is a
  folder the run created but never wrote into.
* A distilled run's folder also holds its training inputs, the teacher copies :data:`RUN_INPUTS`
  (written by ``tomoconsensus distill`` before it trains): they are not run output, are not counted
  as content and are never removed here (distill rewrites them unless it resumes with the same teacher).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tomoconsensus.atomic import CLAIM_NAME, TEMP_NAME, check_writable_folder
from tomoconsensus.claims import claim
from tomoconsensus.errors import InputError
from tomoconsensus.folders import make_parents, remove_created

#: Files a run writes (removed by ``overwrite``).
RUN_FILES = ("config.toml", "run_info.json", "checkpoint.pt", "model.pt", "best.pt", "log.jsonl",
             "summary.json")
#: Inputs a run folder may hold: the teacher copies of a distilled run (:mod:`tomoconsensus.distillation`).
RUN_INPUTS = ("teacher_train.h5", "teacher_val.h5", "teacher_train", "teacher_val")  # folders: several files
LOCK_NAME = ".tomoconsensus.lock"
#: Config fields a resumed run may change: where and how fast it runs, how often it writes.
RESUME_FREE = ("device", "compile", "checkpoint_every_steps", "log_every_steps")


def is_finished(run_dir: Path) -> bool:
    return (run_dir / "model.pt").exists() and (run_dir / "summary.json").exists()


def _contents(run_dir: Path) -> list[str]:
    if not run_dir.is_dir():
        return []
    return sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_NAME and p.name not in RUN_INPUTS
                  and not TEMP_NAME.match(p.name) and not CLAIM_NAME.match(p.name))


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse (InputError) a run folder this ``train`` call must not write into; see the module docstring."""
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(run_dir, "run_dir", "a run folder", "an existing file")
    if resume and overwrite:
        raise InputError(run_dir, "overwrite", "not together with resume (resume continues a run, overwrite starts "
                         "it again)", True)
    if resume:
        if is_finished(run_dir):
            raise InputError(run_dir, "resume", "an interrupted run; this run is finished (model.pt and "
                             "summary.json are final): use --overwrite to train it again from scratch, or a new --out")
        if not (run_dir / "checkpoint.pt").exists():
            raise InputError(run_dir / "checkpoint.pt", "file", "the checkpoint of an interrupted run "
                             "(to start a run, leave out --resume)", "not found")
        return
    contents = _contents(run_dir)
    if contents and not overwrite:
        hint = ("a finished run: --overwrite trains it again from scratch" if is_finished(run_dir) else
                "--resume continues it" if "checkpoint.pt" in contents else "--overwrite starts it again")
        raise InputError(run_dir, "run_dir", f"a new or empty run folder ({hint}; or choose a new --out)",
                         f"it holds {', '.join(contents[:4])}")
    foreign = [name for name in contents if name not in RUN_FILES]
    if foreign:
        raise InputError(run_dir, "run_dir", "a folder holding only run files for --overwrite to replace",
                         f"it also holds {', '.join(foreign[:4])}")
    check_writable_folder(run_dir)


def clear_run(run_dir: Path) -> None:
    """Remove the run's own files (``overwrite``); other files are never touched."""
    for name in RUN_FILES:
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Claim the run folder (created if needed) for the block; RunError "in use" if another process holds it.

    On release the lock file is removed, and the folder too if this call created it and nothing was written.
    """
    created = make_parents(run_dir)
    try:
        with claim(run_dir / LOCK_NAME, str(run_dir), "wait for it to end or train into another --out"):
            yield
    finally:
        remove_created(created)


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``'field: saved -> current'`` for every field that differs (free fields excepted)."""
    keys = sorted((set(saved) | set(current)) - set(RESUME_FREE))
    return [f"{k}: {saved.get(k, '<missing>')!r} in the run, {current.get(k, '<missing>')!r} now"
            for k in keys if saved.get(k) != current.get(k)]


def check_resume(checkpoint: Path, state: Mapping[str, Any], config: Mapping[str, Any],
                 data: Mapping[str, Any]) -> None:
    """Refuse to resume with a configuration or data other than the checkpoint's, naming each difference."""
    diffs = config_differences(state["config"], config)
    saved_data = state.get("data") or {}
    diffs += [f"data.{k}: {saved_data[k]!r} in the run, {data.get(k)!r} now"
              for k in ("train", "val", "train_files") if k in saved_data and saved_data[k] != data.get(k)]
    if diffs:
        raise InputError(checkpoint, ", ".join(d.split(":")[0] for d in diffs),
                         "the settings and data the run was started with (resume cannot change them; "
                         "train into a new --out, or --overwrite to start this run again)", "; ".join(diffs))

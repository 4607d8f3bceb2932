"""Benchmark: wall time and metrics of the full demo (the reduced protocol of `tomoconsensus demo`).

Writes benchmarks/results/demo.json (CT, `make demo`) or demo_<modality>.json (mr, pet, spectral),
whole: every field below is written by this script (:data:`RECORD_KEYS`; tests/test_readme_tables.py
checks the committed files hold exactly these), nothing is added by hand. README's demo tables are
rendered from these files by benchmarks/readme_tables.py.

Run: .venv/bin/python benchmarks/demo.py [--modality ct|mr|pet|spectral] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

#: The fields of a demo record, in order (what each holds: docs/reproducing.md, 'Demo records').
RECORD_KEYS = ("wall_seconds", "protocol", "metrics_md", "quality_md", "summary", "story", "tv_lambda",
               "git_commit", "git_dirty", "date_utc", "command", "cpu_cores", "torch_threads", "load_average_1min",
               "device", "machine", "python")


def git_state(root: Path) -> tuple[str | None, bool | None]:
    """(HEAD commit, whether tracked files differ from it) of the checkout, or (None, None) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip() != ""
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return None, None


def tv_lambda(test_file: Path) -> dict | None:
    """How the CT test file's TV weight was chosen (attributes tv_lam, tv_lam_choice, tv_lam_grid)."""
    import h5py

    if not test_file.exists():
        return None
    with h5py.File(test_file, "r") as f:
        if "tv_lam" not in f.attrs:
            return None
        grid = f.attrs.get("tv_lam_grid")
        return {"lam": float(f.attrs["tv_lam"]), "choice": str(f.attrs.get("tv_lam_choice", "given")),
                "grid": json.loads(grid) if grid is not None else None}


def quality_md(report: Path) -> str | None:
    """A demo's own quality tables (``report/*_quality.md``: PET lesions, spectral iodine), or None."""
    tables = sorted(report.glob("*_quality.md"))
    return "\n".join(p.read_text() for p in tables) if tables else None


def demo_record(result: dict, protocol: str, metrics_md: str, test_file: Path, wall_start_load: float,
                quality: str | None = None) -> dict:
    """The whole record of one demo run (keys :data:`RECORD_KEYS`)."""
    import torch

    commit, dirty = git_state(Path(__file__).resolve().parents[1])
    record = {"wall_seconds": result["seconds"], "protocol": protocol, "metrics_md": metrics_md,
              "quality_md": quality, "summary": result["summary"], "story": result["story"],
              "tv_lambda": tv_lambda(test_file),
              "git_commit": commit, "git_dirty": dirty,
              "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "command": " ".join([Path(sys.executable).name] + sys.argv), "cpu_cores": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "load_average_1min": wall_start_load,
              "device": "cuda" if torch.cuda.is_available() else "cpu", "machine": platform.machine(),
              "python": platform.python_version()}
    assert tuple(record) == RECORD_KEYS
    return record


def restate(path: Path) -> dict:
    """A record written before :data:`RECORD_KEYS` in this schema: fields this script does not write are
    dropped (e.g. notes added by hand), fields it did not yet write are null ("not recorded")."""
    from tomoconsensus.atomic import write_text_atomic

    old = json.loads(path.read_text())
    record = {key: old.get(key) for key in RECORD_KEYS}
    write_text_atomic(path, json.dumps(record, indent=2))
    return record


def main() -> dict:
    from tomoconsensus import registry
    from tomoconsensus.study.runner import demo_protocol, run_study

    from common import write_result

    parser = argparse.ArgumentParser()
    parser.add_argument("--modality", choices=registry.with_part("demo"), default="ct")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--restate", type=Path, default=None, help="rewrite an older record in this schema, no run")
    args = parser.parse_args()
    if args.restate is not None:
        return restate(args.restate)
    load = os.getloadavg()[0]  # other jobs on the machine slow the demo down
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        protocol = demo_protocol(args.modality)
        result = run_study(args.modality, out, protocol, progress=False)
        record = demo_record(result, protocol.describe(), (out / "report" / "metrics.md").read_text(),
                             out / f"{args.modality}_test.h5", load, quality_md(out / "report"))
    write_result("demo.json" if args.modality == "ct" else f"demo_{args.modality}.json", record)
    print(json.dumps({k: record[k] for k in ("wall_seconds", "story")}, indent=2))
    return record


if __name__ == "__main__":
    main()

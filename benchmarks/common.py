"""What the benchmarks share: best-of-n timing, a run's log rows and writing a JSON record to benchmarks/results/."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tomoconsensus.atomic import write_text_atomic

RESULTS = Path(__file__).parent / "results"


def best_of(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """(fastest wall time of ``repeats`` calls in seconds, the last call's return value)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def write_result(name: str, record: dict) -> Path:
    """Write ``record`` as indented JSON to benchmarks/results/<name>, atomically."""
    path = RESULTS / name
    write_text_atomic(path, json.dumps(record, indent=2))
    return path


def log_rows(run_dir: Path, split: str = "val") -> list[dict]:
    """The rows of ``split`` (``val``, ``monitor:NAME``) of a training run's log.jsonl, in step order."""
    lines = (Path(run_dir) / "log.jsonl").read_text().splitlines()
    return sorted((r for r in map(json.loads, filter(str.strip, lines)) if r.get("split") == split),
                  key=lambda r: r["step"])

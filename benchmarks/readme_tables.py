"""The demo blocks of README and docs rendered from the recorded demo runs (benchmarks/results/demo*.json).

Each block sits between ``<!-- BEGIN <file> <kind> -->`` and ``<!-- END <file> <kind> -->`` in
README.md (CT, MR) or a modality's page (docs/pet.md, docs/spectral.md) and is produced from the results file alone:

* ``run``: when, where and how long (the record's wall time, date, commit, cores, device);
* ``table``: the metrics table, by the same function that writes a report's metrics.md
  (:func:`tomoconsensus.report.markdown_from_json`), so the README shows the numbers as printed;
* ``story``: the claims the demo checked (:mod:`tomoconsensus.study.story`), verbatim;
* ``quality``: the modality's own table (``quality_md``, e.g. PET's lesion table), verbatim.

Run: python benchmarks/readme_tables.py --check   (exit 1 when a document differs; tests/test_readme_tables.py)
     python benchmarks/readme_tables.py --write   (after a new benchmarks/demo.py run)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: document (relative to the repository root) -> the (results file, block kind) rendered into it.
BLOCKS = {"README.md": (("demo.json", "run"), ("demo.json", "table"), ("demo.json", "story"),
                        ("demo_mr.json", "run"), ("demo_mr.json", "table"), ("demo_mr.json", "story")),
          "docs/pet.md": (("demo_pet.json", "run"), ("demo_pet.json", "table"), ("demo_pet.json", "quality"),
                          ("demo_pet.json", "story")),
          "docs/spectral.md": (("demo_spectral.json", "run"), ("demo_spectral.json", "table"),
                               ("demo_spectral.json", "quality"), ("demo_spectral.json", "story"))}


def render_run(record: dict) -> str:
    """One line: wall time, date, commit, machine of the recorded run (what the record does not hold is said)."""
    def known(key: str, fmt=str) -> str:
        return fmt(record[key]) if record.get(key) is not None else "not recorded"

    commit = known("git_commit", lambda c: c[:10]) + (" (uncommitted changes)" if record.get("git_dirty") else "")
    return (f"Recorded run: **{record['wall_seconds'] / 60:.1f} min** wall time on {record['cpu_cores']} "
            f"{record['device'].upper()} cores ({record['machine']}); date {known('date_utc')}; commit {commit}; "
            f"torch threads {known('torch_threads')}; load average at the start "
            f"{known('load_average_1min', lambda v: f'{v:.2f}')}.\n")


def render_block(record: dict, kind: str) -> str:
    """The Markdown of one block kind from a demo record."""
    from tomoconsensus.report import markdown_from_json

    if kind == "run":
        return render_run(record)
    if kind == "table":
        return markdown_from_json(record["summary"])
    if kind == "story":
        return "".join(f"* {line}\n" for line in record["story"])
    if kind == "quality":
        return record["quality_md"].rstrip("\n") + "\n"
    raise ValueError(f"unknown block kind {kind!r}")


def block_pattern(name: str, kind: str) -> re.Pattern:
    return re.compile(rf"(<!-- BEGIN {re.escape(name)} {kind} -->\n)(.*?)(<!-- END {re.escape(name)} {kind} -->)",
                      re.DOTALL)


def rendered(text: str, results: Path = RESULTS, document: str = "README.md") -> str:
    """``text`` (the document) with every block replaced by its rendering; ValueError where a marker is missing."""
    for name, kind in BLOCKS[document]:
        record = json.loads((results / name).read_text())
        pattern = block_pattern(name, kind)
        if not pattern.search(text):
            raise ValueError(f"{document}: no <!-- BEGIN {name} {kind} --> ... <!-- END {name} {kind} --> block")
        text = pattern.sub(lambda m, r=record, k=kind: m.group(1) + render_block(r, k) + m.group(3), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 if a document differs from the results")
    mode.add_argument("--write", action="store_true", help="rewrite the documents' blocks from the results")
    args = parser.parse_args(argv)
    differ = []
    for document, blocks in BLOCKS.items():
        path = ROOT / document
        text = path.read_text()
        new = rendered(text, document=document)
        if args.write:
            if new != text:
                from tomoconsensus.atomic import write_text_atomic

                write_text_atomic(path, new)
            print(f"{document}: {len(blocks)} blocks rendered from benchmarks/results")
        elif new != text:
            differ.append(document)
    for document in differ:
        print(f"{document} differs from benchmarks/results (run benchmarks/readme_tables.py --write)", file=sys.stderr)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())

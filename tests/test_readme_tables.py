"""README's demo numbers come from the recorded runs, and the records are written whole (issue 21, section 4)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tomoconsensus.report import markdown_from_json

from tests.benchmark_module import benchmark_module

ROOT = Path(__file__).resolve().parents[1]
RECORDS = tuple(p.name for p in sorted((ROOT / "benchmarks" / "results").glob("demo*.json")))


def test_readme_demo_blocks_equal_the_recorded_run():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "readme_tables.py"), "--check"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", RECORDS)
def test_demo_records_hold_exactly_what_the_script_writes(name):
    with benchmark_module("demo.py", "demo_benchmark") as module:
        keys = module.RECORD_KEYS
    record = json.loads((ROOT / "benchmarks" / "results" / name).read_text())
    assert tuple(record) == keys  # no field added by hand, none missing
    # the table the demo printed is the one the renderer makes from the recorded numbers
    assert markdown_from_json(record["summary"]) == record["metrics_md"]


def test_readme_check_fails_on_a_number_that_differs_from_the_record(tmp_path):
    with benchmark_module("readme_tables.py", "readme_tables") as module:
        readme = (ROOT / "README.md").read_text()
        record = json.loads((ROOT / "benchmarks" / "results" / "demo.json").read_text())
        consensus = record["summary"]["methods"]["Consensus"]["rmse_hu"]
        printed = f"{consensus['mean']:.1f} ± {consensus['std']:.1f}"
        begin = readme.index("<!-- BEGIN demo.json table -->")
        row = readme.index("| RMSE (HU) |", begin)
        tampered = readme[:row] + readme[row:].replace(printed, f"{consensus['mean'] - 0.3:.1f} ± "
                                                                 f"{consensus['std']:.1f}", 1)
        assert tampered != readme and module.rendered(tampered) == readme
        with pytest.raises(ValueError, match="no <!-- BEGIN demo.json story -->"):
            module.rendered(readme.replace("<!-- BEGIN demo.json story -->", ""))
        run = module.render_block(dict(record, wall_seconds=252.0, git_commit="0123456789abcdef", git_dirty=True,
                                       date_utc="2026-12-06T20:00:00Z"), "run")
        assert run.startswith("Recorded run: **4.2 min** wall time on 2 CPU cores") and \
            "date 2026-12-06T20:00:00Z; commit 0123456789 (uncommitted changes)" in run


def test_demo_record_states_commit_date_and_tv_choice(tmp_path):
    import h5py

    with benchmark_module("demo.py", "demo_benchmark") as module:
        test_file = tmp_path / "ct_test.h5"
        with h5py.File(test_file, "w") as f:
            f.attrs.update(tv_lam=1e-3, tv_lam_choice="validation patient reference RMSE, grid 0.0001..0.01",
                           tv_lam_grid=json.dumps([{"lam": 1e-4, "rmse_hu": 15.0}, {"lam": 1e-3, "rmse_hu": 12.0}]))
        result = {"seconds": 250.0, "summary": {}, "story": ["holds: x"]}
        record = module.demo_record(result, "protocol", "| table |", test_file, 1.5)
        assert tuple(record) == module.RECORD_KEYS
        assert record["tv_lambda"] == {"lam": 1e-3, "choice": "validation patient reference RMSE, grid 0.0001..0.01",
                                       "grid": [{"lam": 1e-4, "rmse_hu": 15.0}, {"lam": 1e-3, "rmse_hu": 12.0}]}
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        assert record["git_commit"] == commit and len(commit) == 40
        assert record["date_utc"].endswith("Z") and record["load_average_1min"] == 1.5


def test_pet_page_blocks_are_rendered_from_the_pet_record():
    with benchmark_module("readme_tables.py", "readme_tables") as module:
        page = (ROOT / "docs" / "pet.md").read_text()
        record = json.loads((ROOT / "benchmarks" / "results" / "demo_pet.json").read_text())
        assert module.render_block(record, "quality") in page and record["metrics_md"].split("\n\n")[0] in page
        with pytest.raises(ValueError, match="docs/pet.md: no <!-- BEGIN demo_pet.json quality -->"):
            module.rendered(page.replace("<!-- BEGIN demo_pet.json quality -->", ""), document="docs/pet.md")

"""A modality from outside the repository, installed as a plugin: ``examples/toy_modality`` (toy_counting).

The package is "installed" without pip: copied into a folder on PYTHONPATH beside a
``toy_counting-0.1.dist-info`` whose ``entry_points.txt`` is written from the package's own
pyproject.toml, which is what ``importlib.metadata`` (and so :mod:`tomoconsensus.registry`) reads for an
installed distribution. Every command then runs in a fresh process: nothing registers the plugin in
process, and cli, metrics, evaluate and report name no modality (tests/test_no_modality_names.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "examples" / "toy_modality"
SCAN_TIME_S = 20.0


def _install(site: Path, with_entry_point: bool = True) -> None:
    shutil.copytree(TOY / "toy_counting", site / "toy_counting")
    if not with_entry_point:
        return
    project = tomllib.loads((TOY / "pyproject.toml").read_text())["project"]
    dist = site / f"{project['name']}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = [line for group, eps in project["entry-points"].items()
             for line in (f"[{group}]", *(f"{k} = {v}" for k, v in eps.items()))]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")


def _run(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def counts_file(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """Two 32 x 32 slices of Poisson counts of a disc activity (events/s), and that activity as reference."""
    folder = tmp_path_factory.mktemp("toy")
    yy, xx = np.mgrid[:32, :32]
    activity = np.stack([5.0 + 20.0 * ((yy - 16) ** 2 + (xx - c) ** 2 < 64) for c in (12, 18)])
    counts = np.random.default_rng(3).poisson(SCAN_TIME_S * activity)
    path = folder / "toy_counts.npz"
    np.savez(path, counts=counts, reference=activity)
    return path, counts, activity


def test_installed_plugin_prepares_evaluates_and_reports_in_fresh_processes(counts_file, tmp_path):
    path, counts, activity = counts_file
    site = tmp_path / "site"
    site.mkdir()
    _install(site)
    prepared = tmp_path / "toy.h5"
    done = _run(site, "-m", "tomoconsensus", "prepare", "counting", "--counts", str(path), "--scan-time-s",
                str(SCAN_TIME_S), "--seed", "4", "--out", str(prepared), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with h5py.File(prepared) as f:
        assert f.attrs["modality"] == "counting" and f.attrs["scan_time_s"] == SCAN_TIME_S
        x1, x2, x_est = (f[k][:, 0] for k in ("x1", "x2", "x_est"))
    # ground truth of the measurement model: x_est = N / t / 10; the thinned halves add up to all events
    np.testing.assert_allclose(x_est, counts / SCAN_TIME_S / 10, rtol=1e-6)
    np.testing.assert_allclose((x1 + x2) / 2, x_est, rtol=1e-5, atol=1e-6)
    assert 0 < np.abs(x1 - x2).mean()  # the halves differ (independent thinning), their sum does not

    report = tmp_path / "report"
    done = _run(site, "-m", "tomoconsensus", "evaluate", "--data", str(prepared), "--out", str(report), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    record = json.loads((report / "metrics.json").read_text())
    expected = np.mean([np.sqrt(np.mean((c / SCAN_TIME_S - a) ** 2)) for c, a in zip(counts, activity, strict=True)])
    assert record["modality"] == "counting"
    assert record["methods"]["All counts"]["rmse"]["mean"] == pytest.approx(expected, rel=1e-5)
    table = (report / "metrics.md").read_text()
    assert "| Index | All counts |" in table and "| RMSE (events/s) |" in table and "HU" not in table
    assert (report / "comparison.png").stat().st_size > 1000

    # the report module renders a stored record in another process (as the README tables are rendered)
    code = ("import json, sys; from tomoconsensus.report import markdown_from_json; "
            "print(markdown_from_json(json.load(open(sys.argv[1]))))")
    done = _run(site, "-c", code, str(report / "metrics.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].startswith(f"| RMSE (events/s) | {expected:.1f} ± ")


def test_without_the_entry_point_the_modality_is_unknown(counts_file, tmp_path):
    """The package alone on the path adds nothing: the entry point is what makes it a modality."""
    path, _, _ = counts_file
    site = tmp_path / "site"
    site.mkdir()
    _install(site, with_entry_point=False)
    done = _run(site, "-m", "tomoconsensus", "prepare", "counting", "--counts", str(path), "--scan-time-s", "20",
                "--out", str(tmp_path / "toy.h5"), cwd=tmp_path)
    assert done.returncode == 2 and "invalid choice: 'counting'" in done.stderr
    assert not (tmp_path / "toy.h5").exists()


def test_bad_counts_are_one_line_and_leave_nothing(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _install(site)
    bad = tmp_path / "bad.npz"
    np.savez(bad, counts=np.full((1, 8, 8), 2.5))
    done = _run(site, "-m", "tomoconsensus", "prepare", "counting", "--counts", str(bad), "--scan-time-s", "20",
                "--out", str(tmp_path / "toy.h5"), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error:") and "counts" in done.stderr
    assert not (tmp_path / "toy.h5").exists()

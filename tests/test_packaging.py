"""The package as a user installs it: a wheel built from the checkout, installed outside it.

The geometry TOMLs have one copy, the top-level ``geometry/``; pyproject.toml ships it as the data package
``tomoconsensus.geometries``. These tests check the wheel's contents (fast) and a real install in a fresh
virtual environment run from another folder (slow).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _checkout_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files of the checkout (what a fresh clone plus local edits holds)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to build the wheel from")
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                         check=True).stdout.decode()
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built (no build isolation: offline, about 1 s) from a copy of the checkout's files."""
    pytest.importorskip("setuptools", minversion="77")
    src = tmp_path_factory.mktemp("clone")
    for name in _checkout_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(dist), str(src)], check=True, capture_output=True)
    (path,) = dist.glob("tomoconsensus-*.whl")
    return path


def test_wheel_ships_geometries_embedded_data_and_every_module(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        geometries = sorted((ROOT / "geometry").glob("*.toml"))
        assert len(geometries) >= 3
        for toml in geometries:  # byte-identical copies of the one source
            assert zf.read(f"tomoconsensus/geometries/{toml.name}") == toml.read_bytes()
        assert not [n for n in names if n.startswith("tomoconsensus/geometries/") and not n.endswith(".toml")]
        for f in (ROOT / "tomoconsensus" / "embedded").iterdir():
            assert f"tomoconsensus/embedded/{f.name}" in names
        modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tomoconsensus").rglob("*.py")}
        assert modules - names == set(), "a package folder is missing from [tool.setuptools] packages"
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "tomoconsensus = tomoconsensus.cli:main" in zf.read(entry_points).decode()


def _fresh_venv(root: Path, wheel: Path) -> Path:
    """A new virtual environment holding only the wheel; the test interpreter's dependencies (torch, astra,
    ...) are reachable through a .pth file, appended after the venv's own site-packages, so nothing
    is downloaded and the checkout's package can never shadow the installed one."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "test-dependencies.pth").write_text("".join(p + "\n" for p in sorted(deps)))
    return venv


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(wheel, tmp_path):
    venv = _fresh_venv(tmp_path, wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)

    python = str(venv / "bin" / "python")
    helped = run(python, "-m", "tomoconsensus", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "usage: tomoconsensus" in helped.stdout and "demo" in helped.stdout

    probe = run(python, "-c", "import tomoconsensus, tomoconsensus.tomo.geometry as g; print(tomoconsensus.__file__); "
                              "print(g.shipped_geometries()); print(g.load_geometry('ldct-fanbeam').n_views)")
    assert probe.returncode == 0, probe.stderr
    location, names, n_views = probe.stdout.splitlines()
    assert Path(location).is_relative_to(venv), location  # the installed copy, not the checkout
    assert ast.literal_eval(names) == sorted(p.stem for p in (ROOT / "geometry").glob("*.toml"))
    assert int(n_views) == 2304

    missing = run(python, "-m", "tomoconsensus", "prepare", "ct", "--images", "x", "--geometry", "no-such",
                  "--out", "o.h5")
    assert missing.returncode == 2 and "demo-fanbeam" in missing.stderr  # the shipped names are listed

    demo = run(str(venv / "bin" / "tomoconsensus"), "demo", "ct", "--quick", "--out", "demo", "--device", "cpu")
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "| RMSE (HU) |" in demo.stdout
    assert (elsewhere / "demo" / "ct" / "report" / "metrics.json").is_file()

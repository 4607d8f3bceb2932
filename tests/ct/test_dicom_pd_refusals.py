"""DICOM-CT-PD input that must be refused in one line (exit 2, nothing written), and SIGTERM mid-run.

Every scan is a tiny synthetic one (tests/ct/dicom_pd_writer.py: 24 channels x 4 rows, 32 views per
rotation, 2.5 rotations), written once and edited per case as scanners and converters get files wrong.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEGLSLossless

from tomoconsensus.cli import main
from tomoconsensus.ct.dicom_pd import read_projections
from tomoconsensus.ct.rebin import Rebinner

from tests.ct.dicom_pd_writer import ScanSpec, water_phantom, write_scan

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"n_channels": 24, "n_rows": 4, "views_per_turn": 32, "n_turns": 2.5}
GRID = ["--image-size", "32", "--pixel-size-mm", "8"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_scan(tmp_path_factory.mktemp("tiny") / "scan", ScanSpec(**SMALL), water_phantom())


def edited(src: Path, dst: Path, edit, which=slice(None)) -> Path:
    """A copy of scan ``src`` where ``edit(ds)`` changed the files ``sorted(...)[which]``."""
    shutil.copytree(src, dst)
    for path in sorted(dst.iterdir())[which]:
        ds = pydicom.dcmread(path)
        edit(ds)
        ds.save_as(path)
    return dst


def cli_error(folder: Path, tmp_path: Path, capsys, z: str = "100") -> str:
    out = tmp_path / "out" / "x.h5"
    out.parent.mkdir(exist_ok=True)
    code = main(["prepare", "ct", "--projections", str(folder), "--z-mm", z, *GRID, "--out", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err and "Warning" not in err, err
    assert not any(out.parent.iterdir())
    return lines[0]


def _put(tag: int, vr: str, value):
    return lambda ds: ds.add_new(tag, vr, value)


def _delete(keyword: str):
    return lambda ds: delattr(ds, keyword)


# one pattern each: what the file says, and what the one-line message must name
CASES = {
    "slope-zero": (_put(0x00281053, "DS", "0"), ["RescaleSlope (0028,1053)", "positive"]),
    "slope-negative": (_put(0x00281053, "DS", "-0.5"), ["RescaleSlope (0028,1053)", "positive"]),
    "slope-missing": (_delete("RescaleSlope"), ["RescaleSlope (0028,1053)", "no default", "missing"]),
    "intercept-missing": (_delete("RescaleIntercept"), ["RescaleIntercept (0028,1052)", "missing"]),
    "slope-text": (_put(0x00281053, "LO", "abc"), ["RescaleSlope (0028,1053)", "'abc'"]),
    "nan-table-position": (_put(0x70311002, "FL", float("nan")),
                           ["DetectorFocalCenterAxialPosition (7031,1002)", "NaN in 1 of 1"]),
    "zero-steps": (_put(0x70331013, "US", 0), ["NumberofSourceAngularSteps (7033,1013)", "positive"]),
    "zero-radius": (_put(0x70311031, "FL", 0.0), ["ConstantRadialDistance (7031,1031)", "positive"]),
    "pre-log": (_put(0x70391009, "CS", "NO"), ["LogFlag (7039,1009)", "pre-log"]),
    "dual-source": (_put(0x70331061, "US", 2), ["NumberofSpectra (7033,1061)", "dual-source"]),
    "flat-detector": (_put(0x7029100B, "CS", "FLAT"), ["DetectorShape (7029,100B)", "'FLAT'", "CYLINDRICAL"]),
    "water-text": (_put(0x70411001, "LO", "water"), ["WaterAttenuationCoefficient (7041,1001)", "'water'"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_is_refused_in_one_line_naming_file_and_tag(tiny, tmp_path, capsys, case):
    edit, expected = CASES[case]
    folder = edited(tiny, tmp_path / case, edit)
    line = cli_error(folder, tmp_path, capsys)
    assert all(text in line for text in expected), line
    assert "proj_" in line  # the file is named


def test_views_of_two_sources_are_refused(tiny, tmp_path, capsys):
    """SpectrumIndex 1 and 2 in one folder (the two tubes of a dual-source scan) without NumberofSpectra."""
    folder = edited(tiny, tmp_path / "two", _put(0x70331063, "US", 1))
    edited(folder, tmp_path / "b", _put(0x70331063, "US", 2), which=slice(0, 5))
    line = cli_error(tmp_path / "b", tmp_path, capsys)
    assert "SpectrumIndex (7033,1063)" in line and "same value in every file" in line


def test_nan_photon_statistics_is_called_nan(tmp_path, capsys):
    stats = np.full(24, 1e5)
    stats[3] = np.nan
    folder = write_scan(tmp_path / "p", ScanSpec(**SMALL, incident_photons=1e5, extra={"PhotonStatistics": stats}),
                        water_phantom())
    line = cli_error(folder, tmp_path, capsys)
    assert "PhotonStatistics (7033,1065)" in line and "NaN in 1 of 24" in line and "missing" not in line


def test_compressed_pixels_without_a_decoder_are_refused(tiny, tmp_path, capsys):
    """RLE pixel data declared as JPEG-LS (no JPEG-LS decoder here): refused, never read as raw bytes."""
    rle = write_scan(tmp_path / "rle", ScanSpec(**SMALL, syntax="rle"), water_phantom())

    def as_jpeg_ls(ds):
        ds.file_meta.TransferSyntaxUID = JPEGLSLossless

    line = cli_error(edited(rle, tmp_path / "jls", as_jpeg_ls), tmp_path, capsys)
    assert "PixelData" in line and "JPEG-LS Lossless" in line and "proj_" in line


@pytest.mark.parametrize(("z", "expected"), [("105:108:1e-300", "3e+300 positions"), ("all:1e-9", "e+09 positions"),
                                             (",".join(["110"] * 10001), "10001 positions"), ("nan", "'nan'"),
                                             ("100:inf:1", "'100:inf:1'")])
def test_slice_count_is_bounded_before_allocation(tiny, tmp_path, capsys, z, expected):
    start = time.perf_counter()
    line = cli_error(tiny, tmp_path, capsys, z=z)
    assert "--z-mm" in line and expected in line and time.perf_counter() - start < 20
    if "positions" in expected:
        assert "at most 10000 table positions" in line


def test_scan_too_short_for_any_table_position(tmp_path, capsys):
    folder = write_scan(tmp_path / "short", ScanSpec(**dict(SMALL, n_turns=1.25)), water_phantom())
    line = cli_error(folder, tmp_path, capsys, z="all:1")
    assert "DetectorFocalCenterAxialPosition (7031,1002)" in line and "do not overlap" in line


def _z_inside(folder: Path) -> float:
    lo, hi = Rebinner(read_projections(folder, progress=False), 32, 8.0).z_range_mm()
    return round((lo + hi) / 2, 1)


def test_sigterm_inside_the_backprojection_stops_between_slices(tiny, tmp_path, capsys, monkeypatch):
    """The signal arrives while the compiled kernel runs: the kernel finishes, the run stops before the
    next slice (exit 143, one line, nothing written). A handler that raised would stop inside it."""
    from tomoconsensus.tomo import backproject

    run, finished = backproject._run, []

    def signal_inside(*args):
        if not finished:
            os.kill(os.getpid(), signal.SIGTERM)
        image = run(*args)
        finished.append(image.shape == (1, 32 * 32))  # this kernel call ran to its end
        return image

    z = _z_inside(tiny)
    monkeypatch.setattr(backproject, "_run", signal_inside)
    out = tmp_path / "out" / "x.h5"
    code = main(["prepare", "ct", "--projections", str(tiny), "--z-mm", f"{z},{z},{z}", *GRID, "--device", "cpu",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 128 + signal.SIGTERM and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "interrupted: stopped by SIGTERM; no partial output was left"
    assert finished and all(finished) and len(finished) <= 3  # x1, x2, x_est of the first slice at most
    assert not out.parent.exists() or not any(out.parent.iterdir())
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.slow
def test_sigterm_at_random_times_in_a_real_process(tmp_path):
    """Three real runs killed by SIGTERM at different moments of the slice loop (6 of 7 ended in a
    SystemError traceback from the Numba kernel before signals were deferred)."""
    folder = write_scan(tmp_path / "scan", ScanSpec(**dict(SMALL, n_turns=3.0)), water_phantom())
    z = _z_inside(folder)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for attempt, delay in enumerate((0.0, 0.37, 1.1)):
        out = tmp_path / f"out{attempt}"
        out.mkdir()
        proc = subprocess.Popen([sys.executable, "-m", "tomoconsensus", "prepare", "ct", "--projections", str(folder),
                                 "--z-mm", ",".join([str(z)] * 400), "--image-size", "64", "--pixel-size-mm", "4",
                                 "--device", "cpu", "--out", str(out / "x.h5")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not any(out.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # the temporary output appears when the slice loop starts
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith(("interrupted", "error",
                                                                                           "Traceback"))]
        assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
        assert lines == ["interrupted: stopped by SIGTERM; no partial output was left"], err[-2000:]
        assert "Traceback" not in err and "SystemError" not in err
        assert not any(out.iterdir())

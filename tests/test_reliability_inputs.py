"""Bad input to denoise --images, distill, the number parsers and the TOML config: one line, exit 2, nothing written.

One test per pattern (issue 23): every case runs ``tomoconsensus.cli.main`` and must give exit 2 and one
stderr line naming the field, without a traceback or a warning beside it, with every file byte-identical.
Then: outputs that would not be finite are never written, warnings after success are one line each,
the memory estimate is exact in its parameter count and refuses what cannot fit, and ``distill --resume``
refuses another teacher.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from tomoconsensus.cli import main
from tomoconsensus.learn.config import load_train_config
from tomoconsensus.learn.loop import train
from tomoconsensus.learn.memory import estimate_training_memory
from tomoconsensus.nn.unet import UNet, count_parameters, parameter_count

from tests.ct.test_dicom_denoise import make_run, phantom_stored, write_series
from tests.test_cli_contract import TINY_TOML, run_cli, snapshot, write_prepared_file

BIG = "1" + "0" * 400  # a 401-digit integer


def _retag(folder: Path, **tags) -> Path:
    """Set DICOM tags in every file of a series folder."""
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        for k, v in tags.items():
            setattr(ds, k, v)
        ds.save_as(path)
    return folder


def _nan_weights(run: Path, dst: Path) -> Path:
    shutil.copytree(run, dst)
    state = torch.load(dst / "model.pt", weights_only=True)
    next(iter(state["models"]["f"].values())).view(-1)[0] = float("nan")
    torch.save(state, dst / "model.pt")
    return dst


def _pixel_size(run: Path, dst: Path, value) -> Path:
    shutil.copytree(run, dst)
    info = json.loads((dst / "run_info.json").read_text())
    info["training_data"]["pixel_size_mm"] = value
    (dst / "run_info.json").write_text(json.dumps(info))
    return dst


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    p = {"dir": d, "run": make_run(d / "run"), "toml": d / "tiny.toml"}
    p["toml"].write_text(TINY_TOML)
    write_series(d / "ser", phantom_stored(2), [0.0, 3.0])
    for name, modality in (("mr", "MR"), ("pet", "PT")):
        write_series(d / name, phantom_stored(1), [0.0])
        _retag(d / name, Modality=modality)
    write_series(d / "nanpos", phantom_stored(2), [0.0, 3.0])
    _retag(d / "nanpos", ImagePositionPatient=[0.0, 0.0, float("nan")])
    write_series(d / "nanori", phantom_stored(1), [0.0])
    _retag(d / "nanori", ImageOrientationPatient=[1.0, 0.0, 0.0, 0.0, float("inf"), 0.0])
    write_series(d / "nomodality", phantom_stored(1), [0.0])
    _retag(d / "nomodality", Modality="")
    write_series(d / "tiny", phantom_stored(1, 2), [0.0])
    write_series(d / "fine8", phantom_stored(1, 8), [0.0], spacing=0.375)  # 1 pixel on the 3 mm grid
    write_series(d / "slope", phantom_stored(1), [0.0], slope=1e38)
    p["nanrun"] = _nan_weights(p["run"], d / "nanrun")
    p["zerorun"] = _pixel_size(p["run"], d / "zerorun", 0)
    p["ct"], p["ct64"] = write_prepared_file(d / "ct.h5"), write_prepared_file(d / "ct64.h5", size=64)
    p["mr"] = write_prepared_file(d / "mr.h5", "mr", 2)
    p["teacher"] = d / "teacher"
    train(load_train_config(p["toml"], {"method": "noise2noise"}), p["ct"], p["teacher"], progress=False)
    (d / "x.npy").mkdir()
    geometry = (Path(__file__).resolve().parents[1] / "geometry" / "demo-fanbeam.toml").read_text()
    (d / "views.toml").write_text(geometry.replace("n_views = 360", "n_views = 4611686018427387904"))
    np.savez(d / "huge_pixels.npz", hu=np.zeros((1, 32, 32), np.float32), pixel_spacing_mm=np.full(1, 1e300))
    for name, old, new in (("inf_batch", "batch_size = 2", "batch_size = inf"),
                           ("inf_epochs", "epochs = 2", "epochs = inf"),
                           ("big_seed", "depth = 1", "depth = 1\nseed = 18446744073709551616"),
                           ("half_depth", "depth = 1", "depth = 1.5"),
                           ("deep", "depth = 1", "depth = 1000000000000")):
        (d / f"{name}.toml").write_text(TINY_TOML.replace(old, new))
    rng = np.random.default_rng(0)
    np.savez(d / "k.npz", kspace=(rng.standard_normal((1, 2, 32, 32))
                                  + 1j * rng.standard_normal((1, 2, 32, 32))).astype(np.complex64))
    return p


def _denoise(fx, t, series, *extra, run="run"):
    return ["denoise", "--run", fx[run], "--images", fx["dir"] / series, "--out", t / "out", "--device", "cpu", *extra]


def _train(fx, t, *extra, toml="tiny"):
    return ["train", "--data", fx["ct"], "--config", fx["dir"] / f"{toml}.toml", "--out", t / "r", *extra]


def _distill(fx, t, data, *extra):
    return ["distill", "--teacher", fx["teacher"], "--data", fx[data], "--config", fx["toml"], "--out", t / "g",
            *extra]


#: id -> (function(fx, tmp) -> argv, text the one line must contain)
CASES = {
    # ---- denoise --images: a series, run or output it cannot turn into a right image
    "images-mr-series": (lambda fx, t: _denoise(fx, t, "mr"), "'MR'"),
    "images-pet-series": (lambda fx, t: _denoise(fx, t, "pet"), "Modality"),
    "images-nan-position": (lambda fx, t: _denoise(fx, t, "nanpos"), "ImagePositionPatient"),
    "images-inf-orientation": (lambda fx, t: _denoise(fx, t, "nanori"), "ImageOrientationPatient"),
    "images-empty-modality": (lambda fx, t: _denoise(fx, t, "nomodality"), "Modality"),
    "images-nan-weights": (lambda fx, t: _denoise(fx, t, "ser", run="nanrun"), "nanrun/model.pt"),
    "images-2x2": (lambda fx, t: _denoise(fx, t, "tiny"), "at least 2**depth = 4 pixels"),
    "images-resampled-to-1-pixel": (lambda fx, t: _denoise(fx, t, "fine8", "--resample"), "1 on the training grid"),
    "images-resampled-to-1e301-pixels": (lambda fx, t: _denoise(fx, t, "huge_pixels.npz")[:-3]
                                         + [t / "o.npy", "--device", "cpu", "--resample"], "at most 16384 pixels"),
    "images-run-pixel-size-0": (lambda fx, t: _denoise(fx, t, "ser", "--resample", run="zerorun"), "pixel_size_mm"),
    "images-rescale-overflow": (lambda fx, t: _denoise(fx, t, "slope"), "RescaleSlope"),
    "images-out-npy-is-folder": (lambda fx, t: _denoise(fx, t, "ser")[:-3] + [fx["dir"] / "x.npy", "--device", "cpu"],
                                 "folder"),
    # ---- denoise options that do not go together or lie outside their range
    "images-data-consistency": (lambda fx, t: _denoise(fx, t, "ser", "--data-consistency", "0.1"), "--images"),
    "images-pixel-spacing-dicom": (lambda fx, t: _denoise(fx, t, "ser", "--pixel-spacing-mm", "3"), "DICOM"),
    "data-val-without-consistency": (lambda fx, t: ["denoise", "--run", fx["run"], "--data", fx["ct"], "--val",
                                                    fx["ct"], "--out", t / "d.h5"], "--val"),
    "data-resample": (lambda fx, t: ["denoise", "--run", fx["run"], "--data", fx["ct"], "--resample",
                                     "--out", t / "d.h5"], "--resample"),
    "data-keep-means-1e300": (lambda fx, t: ["denoise", "--run", fx["run"], "--data", fx["ct"], "--keep-means-mm",
                                             "1e300", "--out", t / "d.h5", "--device", "cpu"], "(0, 1000] mm"),
    # ---- integers: parsed as integers, below 2**63
    "train-seed-400-digits": (lambda fx, t: _train(fx, t, "--seed", BIG), "--seed"),
    "train-seed-2**64": (lambda fx, t: _train(fx, t, "--seed", str(2**64)), "2**63"),
    "train-batch-size-400-digits": (lambda fx, t: _train(fx, t, "--batch-size", BIG), "--batch-size"),
    "denoise-batch-size-400-digits": (lambda fx, t: _denoise(fx, t, "ser", "--batch-size", BIG), "--batch-size"),
    "mr-center-lines-400-digits": (lambda fx, t: ["prepare", "mr", "--kspace", fx["dir"] / "k.npz", "--center-lines",
                                                  BIG, "--out", t / "m.h5"], "--center-lines"),
    "mr-calib-width-400-digits": (lambda fx, t: ["prepare", "mr", "--kspace", fx["dir"] / "k.npz", "--calib-width",
                                                 BIG, "--out", t / "m.h5"], "--calib-width"),
    "toml-batch-size-inf": (lambda fx, t: _train(fx, t, toml="inf_batch"), "batch_size"),
    "toml-epochs-inf": (lambda fx, t: _train(fx, t, toml="inf_epochs"), "epochs"),
    "toml-seed-2**64": (lambda fx, t: _train(fx, t, toml="big_seed"), "seed"),
    "toml-depth-1.5": (lambda fx, t: _train(fx, t, toml="half_depth"), "depth"),
    "toml-depth-1e12": (lambda fx, t: _train(fx, t, toml="deep"), "[1, 16]"),  # 2**depth took forever
    "geometry-n-views-2**62": (lambda fx, t: ["prepare", "ct", "--geometry", fx["dir"] / "views.toml", "--images",
                                              fx["dir"] / "ser", "--out", t / "p.h5"], "n_views"),
    "mr-acceleration-1e300": (lambda fx, t: ["prepare", "mr", "--kspace", fx["dir"] / "k.npz", "--acceleration",
                                             "1e300", "--center-lines", "4", "--out", t / "m.h5"],
                              "--acceleration': expected below 12.8"),
    # ---- distill: a teacher of another modality or image size, a student that cannot fit in memory
    "distill-other-image-size": (lambda fx, t: _distill(fx, t, "ct64"), "(32, 32) pixels"),
    "distill-other-modality": (lambda fx, t: _distill(fx, t, "mr"), "channel"),
    "distill-base-features-1e6": (lambda fx, t: _distill(fx, t, "ct", "--base-features", "1000000"), "GiB"),
    "train-base-features-1e6": (lambda fx, t: _train(fx, t, "--base-features", "1000000"), "GiB"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, fx, tmp_path, capsys):
    build, expected = CASES[case]
    argv = build(fx, tmp_path)
    before = snapshot(fx["dir"], tmp_path)
    code, err = run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "Traceback" not in err and "Warning" not in err and "warning" not in err
    assert expected in lines[0], lines[0]
    assert snapshot(fx["dir"], tmp_path) == before


def test_an_output_that_would_not_be_finite_is_never_written(fx, tmp_path, capsys):
    """A run with finite but huge weights (3e38) overflows to inf on any image: every denoise path
    (a series with --resample, which first raises a CoarseCorrectionWarning; a prepared file) exits 2 with
    the error as its last line, shows no warning and writes nothing."""
    run = make_run(tmp_path / "run")
    state = torch.load(run / "model.pt", weights_only=True)
    state["models"]["f"]["encoders.0.1.bias"].fill_(3e38)  # every first-layer feature 3e38 after batch norm,
    state["models"]["f"]["encoders.0.3.weight"].fill_(1.0)  # and the next 3x3 sums overflow float32 to inf
    torch.save(state, run / "model.pt")
    write_series(tmp_path / "fine", phantom_stored(1, 64), [0.0], spacing=0.75)
    capsys.readouterr()
    for source, out in (("--images", tmp_path / "fine"), ("--data", fx["ct"])):
        target = tmp_path / ("out" if source == "--images" else "out.h5")
        extra = ["--resample"] if source == "--images" else []
        code = main(["denoise", "--run", str(run), source, str(out), "--out", str(target), "--device", "cpu", *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "non-finite pixels" in err.splitlines()[-1], err
        assert "warning" not in err.lower() and not target.exists()
        assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_warnings_after_success_are_one_line_each(fx, tmp_path, capsys):
    series = tmp_path / "fine"
    write_series(series, phantom_stored(1, 64), [0.0], spacing=0.75)
    capsys.readouterr()
    assert main(["denoise", "--run", str(fx["run"]), "--images", str(series), "--out", str(tmp_path / "o"),
                 "--device", "cpu", "--resample"]) == 0
    warned = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln.lower()]
    assert len(warned) == 1 and warned[0].startswith("warning: the series' 0.75 mm pixels") and "3 mm" in warned[0]


def test_memory_estimate_counts_parameters_exactly_and_grows_with_the_network():
    for channels, base, depth in ((1, 32, 4), (2, 64, 4), (1, 2, 1), (3, 5, 0)):
        assert parameter_count(channels, base, depth) == count_parameters(UNet(channels, base, depth))
    config = load_train_config(None, {"method": "consensus", "base_features": 1_000_000})
    need = estimate_training_memory(config, 10, 512, 512)
    # two networks of 7.6e15 parameters with gradients and Adam: 16 bytes each, 2.4e17 bytes
    assert need.parameters == parameter_count(1, 1_000_000, 4) == 7_574_000_209_000_001
    assert need.weight_bytes == 2 * 16 * need.parameters and need.networks == 2
    paper = estimate_training_memory(load_train_config(None, {"method": "consensus"}), 10, 512, 512)
    assert paper.device_bytes < 4 * 2**30  # the paper's UNet-32 with 40 patches of 96^2 is not refused


def test_distill_resume_with_another_teacher_is_refused(fx, tmp_path, capsys):
    other = tmp_path / "other"
    train(load_train_config(fx["toml"], {"method": "noise2noise", "seed": 5}), fx["ct"], other, progress=False)
    student = tmp_path / "g"
    base = ["distill", "--data", str(fx["ct"]), "--config", str(fx["toml"]), "--out", str(student),
            "--max-steps", "4"]
    assert main(base + ["--teacher", str(fx["teacher"])]) == 0
    info = json.loads((student / "run_info.json").read_text())["teacher"]
    assert len(info["model_sha256"]) == 64
    (student / "model.pt").unlink()  # as if interrupted after a checkpoint
    (student / "summary.json").unlink(missing_ok=True)
    before = snapshot(student)
    capsys.readouterr()
    assert main(base + ["--teacher", str(other), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run_info.json" in err and str(fx["teacher"]) in err and "other" in err
    assert snapshot(student) == before  # the teacher outputs were not rewritten
    # the same teacher on another data file of the same size: the student would mix two training sets
    other_data = write_prepared_file(tmp_path / "other.h5", seed=3)
    assert main(base[:1] + ["--data", str(other_data)] + base[3:] + ["--teacher", str(fx["teacher"]), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "teacher_source" in err and "other.h5" in err
    assert snapshot(student) == before

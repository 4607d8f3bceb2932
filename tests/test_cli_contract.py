"""The CLI contract on bad input and faults: exit 2, one line on stderr, no traceback, nothing written.

Every case of the corpus runs ``tomoconsensus.cli.main`` on tiny synthetic files and asserts

* exit code 2 and exactly one line on stderr, without "Traceback";
* no file or folder created, changed or removed: a SHA-256 snapshot of the shared fixture folder and
  of the case's own folder is identical before and after (inputs byte-identical, no output left).

Behaviour that must *succeed* safely (``--overwrite``, skipped DICOMDIR/README files, SIGTERM during
training, stale temporary files) is tested at the end.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pydicom
import pytest
import torch

from tomoconsensus.cli import main

from tests.conftest import DATA

ROOT = Path(__file__).resolve().parents[1]
TINY_TOML = ("[train]\nbase_features = 2\ndepth = 1\npatch_size = 16\nbatch_size = 2\npatches_per_slice = 2\n"
             "epochs = 2\ncheckpoint_every_steps = 1\nlog_every_steps = 1\ndevice = 'cpu'\n")


# ------------------------------------------------------------------------------------- fixtures

def write_prepared_file(path: Path, modality: str = "ct", channels: int = 1, size: int = 32, n: int = 4,
                        reference: bool = True, seed: int = 0) -> Path:
    """A small prepared file written directly in the documented schema (no reconstruction needed)."""
    rng = np.random.default_rng(seed)
    units = "HU/1000" if modality == "ct" else "scaled complex image (real, imaginary), per-volume factor in [-1, 1]"
    clean = rng.uniform(-0.5, 0.5, (n, channels, size, size)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.attrs.update(format="tomoconsensus.prepared", format_version=1, modality=modality, units=units,
                       channels=channels, seed=0)
        for key in ("x1", "x2", "x_est"):
            f[key] = clean + 0.1 * rng.standard_normal(clean.shape).astype(np.float32)
        if reference:
            f["reference"] = clean
        f["slice_id"] = np.array([f"p{i // 2}_{i:03d}" for i in range(n)], dtype=h5py.string_dtype())
        f["patient_id"] = np.array([f"p{i // 2}" for i in range(n)], dtype=h5py.string_dtype())
    return path


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """Shared inputs (never to be modified by a refused command): files, a finished and an interrupted run."""
    from tomoconsensus.denoising import denoise
    from tomoconsensus.learn.config import load_train_config
    from tomoconsensus.learn.loop import train

    d = tmp_path_factory.mktemp("contract")
    paths = {"dir": d}
    paths["sino"] = d / "sino.h5"
    with h5py.File(paths["sino"], "w") as f:
        f["sinograms"] = np.full((1, 360, 184), 0.5, np.float32)
    paths["npz"] = d / "hu.npz"
    np.savez(paths["npz"], hu=np.zeros((2, 32, 32), np.float32), pixel_spacing_mm=np.array([1.0, 1.0]))
    paths["kspace"] = d / "k.npz"
    rng = np.random.default_rng(0)
    np.savez(paths["kspace"], kspace=(rng.standard_normal((1, 2, 32, 32))
                                      + 1j * rng.standard_normal((1, 2, 32, 32))).astype(np.complex64))
    paths["ct"] = write_prepared_file(d / "ct.h5")
    paths["ct64"] = write_prepared_file(d / "ct64.h5", size=64)
    paths["mr"] = write_prepared_file(d / "mr.h5", "mr", 2)
    paths["toml"] = d / "tiny.toml"
    paths["toml"].write_text(TINY_TOML)
    config = load_train_config(paths["toml"], {"method": "consensus"})
    paths["run"] = d / "run"
    train(config, paths["ct"], paths["run"], progress=False)
    paths["partial"] = d / "partial"
    train(config, paths["ct"], paths["partial"], stop_after_steps=2, progress=False)
    paths["denoised"] = d / "den.h5"
    denoise(paths["run"], paths["ct"], paths["denoised"], device="cpu", progress=False)
    paths["dicom"] = d / "one.dcm"
    shutil.copy(next((DATA / "ct" / "dicom").glob("*.dcm")), paths["dicom"])
    return paths


def snapshot(*folders: Path) -> dict[str, str]:
    """Path -> SHA-256 of every file (and 'dir' for every folder) under the folders."""
    out = {}
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            out[str(p)] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err


# --------------------------------------------------------------------------- case builders

def _h5(path: Path, **datasets) -> Path:
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            if isinstance(v, str) and v == "GROUP":
                f.create_group(k)
            else:
                f[k] = v
    return path


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _dicom(src: Path, dst: Path, **tags) -> Path:
    ds = pydicom.dcmread(src)
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(dst)
    return dst


def _kspace(path: Path, data) -> Path:
    np.savez(path, kspace=data)
    return path


def _locked(run: Path):
    run.mkdir()
    fd = os.open(run / ".tomoconsensus.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"12345\n")
    return fd


def _copy_run(src: Path, dst: Path, drop: tuple[str, ...] = ()) -> Path:
    shutil.copytree(src, dst)
    for name in drop:
        (dst / name).unlink()
    return dst


def _evil_run(run: Path) -> Path:
    run.mkdir()
    torch.save({"format": "tomoconsensus.checkpoint", "payload": print}, run / "model.pt")
    return run


PCT = ["prepare", "ct", "--geometry", "demo-fanbeam"]
PMR = ["prepare", "mr"]
K = np.random.default_rng(1).standard_normal((1, 2, 32, 32)).astype(np.complex64)

#: id -> (function(fx, tmp) -> argv, text the one line must contain)
CASES = {
    # ---- outputs never destroy inputs
    "prepare-ct-out-is-input": (lambda fx, t: PCT + ["--sinograms", fx["sino"], "--out", fx["sino"]], "input"),
    "prepare-ct-out-is-input-overwrite": (lambda fx, t: PCT + ["--sinograms", fx["sino"], "--out", fx["sino"],
                                                               "--overwrite"], "input"),
    "prepare-ct-out-hard-link-to-input": (lambda fx, t: (os.link(fx["sino"], t / "link.h5"),
                                                         PCT + ["--sinograms", fx["sino"], "--out", t / "link.h5",
                                                                "--overwrite"])[1], "input"),
    "prepare-ct-out-symlink-to-input": (lambda fx, t: ((t / "sym.h5").symlink_to(fx["sino"]),
                                                       PCT + ["--sinograms", fx["sino"], "--out", t / "sym.h5",
                                                              "--overwrite"])[1], "input"),
    "prepare-ct-images-out-is-input": (lambda fx, t: PCT + ["--images", fx["npz"], "--out", fx["npz"]], "input"),
    "prepare-ct-out-exists": (lambda fx, t: ((t / "old.h5").write_bytes(b"keep me"),
                                             PCT + ["--sinograms", fx["sino"], "--out", t / "old.h5"])[1],
                              "--overwrite"),
    "prepare-ct-out-is-folder": (lambda fx, t: PCT + ["--sinograms", fx["sino"], "--out", t], "folder"),
    "prepare-ct-out-under-a-file": (lambda fx, t: ((t / "f").write_text("x"),
                                                   PCT + ["--sinograms", fx["sino"], "--out", t / "f" / "x.h5"])[1],
                                    "file"),
    "prepare-ct-out-unwritable": (lambda fx, t: PCT + ["--sinograms", fx["sino"], "--out", "/proc/tc-test/x.h5"],
                                  "write"),
    "prepare-mr-out-is-input": (lambda fx, t: PMR + ["--kspace", fx["kspace"], "--out", fx["kspace"],
                                                     "--overwrite"], "input"),
    "prepare-mr-out-inside-kspace-folder": (lambda fx, t: (shutil.copy(fx["kspace"], t / "k.npz"),
                                                           PMR + ["--kspace", t, "--out", t / "p.h5"])[1],
                                            "input folder"),
    "denoise-out-is-data": (lambda fx, t: ["denoise", "--run", fx["run"], "--data", fx["ct"], "--out", fx["ct"],
                                           "--overwrite"], "input"),
    "denoise-out-is-model": (lambda fx, t: ["denoise", "--run", fx["run"], "--data", fx["ct"],
                                            "--out", fx["run"] / "model.pt", "--overwrite"], "input"),
    "denoise-out-exists": (lambda fx, t: ["denoise", "--run", fx["run"], "--data", fx["ct"],
                                          "--out", fx["denoised"]], "--overwrite"),
    "evaluate-out-is-file": (lambda fx, t: ["evaluate", "--data", fx["ct"], "--out", fx["ct"]], "file"),
    "evaluate-out-holds-a-report": (lambda fx, t: ((t / "metrics.md").write_text("old"),
                                                   ["evaluate", "--data", fx["ct"], "--out", t])[1], "--overwrite"),
    "train-out-is-file": (lambda fx, t: ["train", "--data", fx["ct"], "--config", fx["toml"], "--out", fx["ct"]],
                          "file"),
    "train-out-foreign-files": (lambda fx, t: ((t / "notes.txt").write_text("mine"),
                                               ["train", "--data", fx["ct"], "--config", fx["toml"], "--out", t,
                                                "--overwrite"])[1], "notes.txt"),
    # ---- runs
    "train-resume-finished-run": (lambda fx, t: ["train", "--data", fx["ct"], "--config", fx["toml"], "--method",
                                                 "consensus", "--out", fx["run"], "--resume"], "finished"),
    "train-new-into-finished-run-without-checkpoint": (
        lambda fx, t: ["train", "--data", fx["ct"], "--config", fx["toml"], "--method", "consensus",
                       "--out", _copy_run(fx["run"], t / "r", ("checkpoint.pt",))], "run folder"),
    "train-new-into-interrupted-run": (lambda fx, t: ["train", "--data", fx["ct"], "--config", fx["toml"],
                                                      "--out", fx["partial"]], "--resume"),
    "train-resume-other-config": (lambda fx, t: ["train", "--data", fx["ct"], "--config", fx["toml"], "--method",
                                                 "consensus", "--out", fx["partial"], "--resume",
                                                 "--learning-rate", "0.5", "--seed", "3"], "learning_rate, seed"),
    "train-resume-other-method": (lambda fx, t: ["train", "--data", fx["ct"], "--config", fx["toml"], "--method",
                                                 "noise2noise", "--out", fx["partial"], "--resume"], "method"),
    "train-resume-other-data": (lambda fx, t: ["train", "--data", fx["ct64"], "--config", fx["toml"], "--method",
                                               "consensus", "--out", fx["partial"], "--resume"], "data.train"),
    "train-resume-and-overwrite": (lambda fx, t: ["train", "--data", fx["ct"], "--out", fx["partial"], "--resume",
                                                  "--overwrite"], "--overwrite"),
    "train-resume-without-checkpoint": (lambda fx, t: ["train", "--data", fx["ct"], "--config", fx["toml"],
                                                       "--out", t / "none", "--resume"], "checkpoint.pt"),
    "train-run-folder-locked": (lambda fx, t: (_locked(t / "busy"),
                                               ["train", "--data", fx["ct"], "--config", fx["toml"],
                                                "--out", t / "busy"])[1], "in use"),
    "denoise-missing-run": (lambda fx, t: ["denoise", "--run", t / "nope", "--data", fx["ct"], "--out", t / "d.h5"],
                            "--run"),
    "denoise-blocked-pickle": (lambda fx, t: ["denoise", "--run", _evil_run(t / "evil"), "--data", fx["ct"],
                                              "--out", t / "d.h5", "--device", "cpu"], "weights_only=True"),
    # ---- option values
    "mr-acceleration-0": (lambda fx, t: PMR + ["--kspace", fx["kspace"], "--acceleration", "0", "--out", t / "o.h5"],
                          "--acceleration"),
    "mr-acceleration-nan": (lambda fx, t: PMR + ["--kspace", fx["kspace"], "--acceleration", "nan",
                                                 "--out", t / "o.h5"], "--acceleration"),
    "mr-acceleration-1": (lambda fx, t: PMR + ["--kspace", fx["kspace"], "--acceleration", "1", "--out", t / "o.h5"],
                          "--acceleration"),
    "mr-center-lines-0": (lambda fx, t: PMR + ["--kspace", fx["kspace"], "--center-lines", "0", "--out", t / "o.h5"],
                          "--center-lines"),
    "mr-center-lines-above-matrix": (lambda fx, t: PMR + ["--kspace", fx["kspace"], "--center-lines", "40",
                                                          "--out", t / "o.h5"], "--center-lines"),
    "mr-default-center-lines-small-matrix": (lambda fx, t: PMR + ["--kspace", fx["kspace"], "--out", t / "o.h5"],
                                             "--center-lines"),
    "mr-identical-halves": (lambda fx, t: PMR + ["--kspace", fx["kspace"], "--center-lines", "8", "--out", t / "o.h5"],
                            "identical"),
    "mr-negative-sense-lambda": (lambda fx, t: PMR + ["--kspace", fx["kspace"], "--center-lines", "4",
                                                      "--sense-lambda", "-1", "--out", t / "o.h5"], "--sense-lambda"),
    "mr-negative-variable-density": (lambda fx, t: PMR + ["--kspace", fx["kspace"], "--variable-density", "-1",
                                                          "--out", t / "o.h5"], "--variable-density"),
    "mr-seed-negative": (lambda fx, t: PMR + ["--kspace", fx["kspace"], "--seed", "-1", "--out", t / "o.h5"], "--seed"),
    "mr-device-tpu": (lambda fx, t: PMR + ["--kspace", fx["kspace"], "--device", "tpu", "--out", t / "o.h5"],
                      "--device"),
    "ct-dose-fraction-nan": (lambda fx, t: PCT + ["--images", fx["npz"], "--dose-fraction", "nan", "--out", t / "o.h5"],
                             "--dose-fraction"),
    "ct-dose-fraction-inf": (lambda fx, t: PCT + ["--images", fx["npz"], "--dose-fraction", "inf", "--out", t / "o.h5"],
                             "--dose-fraction"),
    "ct-dose-fraction-0": (lambda fx, t: PCT + ["--images", fx["npz"], "--dose-fraction", "0", "--out", t / "o.h5"],
                           "--dose-fraction"),
    "ct-tv-lam-nan": (lambda fx, t: PCT + ["--images", fx["npz"], "--tv", "--tv-lam", "nan", "--out", t / "o.h5"],
                      "--tv-lam"),
    "ct-tv-iter-0": (lambda fx, t: PCT + ["--images", fx["npz"], "--tv", "--tv-iter", "0", "--out", t / "o.h5"],
                     "--tv-iter"),
    "ct-max-slices-negative": (lambda fx, t: PCT + ["--images", fx["npz"], "--max-slices", "-3", "--out", t / "o.h5"],
                               "--max-slices"),
    "ct-max-slices-0": (lambda fx, t: PCT + ["--images", fx["npz"], "--max-slices", "0", "--out", t / "o.h5"],
                        "--max-slices"),
    "ct-pixel-spacing-option-0": (lambda fx, t: PCT + ["--images", _npz(t / "a.npz", hu=np.zeros((1, 8, 8))),
                                                       "--pixel-spacing-mm", "0", "--out", t / "o.h5"],
                                  "--pixel-spacing-mm"),
    "ct-device-tpu": (lambda fx, t: PCT + ["--images", fx["npz"], "--device", "tpu", "--out", t / "o.h5"], "--device"),
    "ct-reference-bogus": (lambda fx, t: PCT + ["--images", fx["npz"], "--reference", "x", "--out", t / "o.h5"],
                           "--reference"),
    "ct-geometry-unknown": (lambda fx, t: ["prepare", "ct", "--images", fx["npz"], "--geometry", "nope",
                                           "--out", t / "o.h5"], "geometry"),
    "train-batch-size-0": (lambda fx, t: ["train", "--data", fx["ct"], "--batch-size", "0", "--out", t / "r"],
                           "--batch-size"),
    "train-learning-rate-nan": (lambda fx, t: ["train", "--data", fx["ct"], "--learning-rate", "nan", "--out", t / "r"],
                                "--learning-rate"),
    "train-learning-rate-inf": (lambda fx, t: ["train", "--data", fx["ct"], "--learning-rate", "inf", "--out", t / "r"],
                                "--learning-rate"),
    "train-epochs-0": (lambda fx, t: ["train", "--data", fx["ct"], "--epochs", "0", "--out", t / "r"], "--epochs"),
    "train-method-bogus": (lambda fx, t: ["train", "--data", fx["ct"], "--method", "noise2void", "--out", t / "r"],
                           "--method"),
    "train-device-tpu": (lambda fx, t: ["train", "--data", fx["ct"], "--device", "tpu", "--out", t / "r"], "--device"),
    "train-config-device-tpu": (lambda fx, t: ((t / "c.toml").write_text(TINY_TOML.replace("'cpu'", "'tpu'")),
                                               ["train", "--data", fx["ct"], "--config", t / "c.toml",
                                                "--out", t / "r"])[1], "device"),
    "train-network-too-deep": (lambda fx, t: ((t / "c.toml").write_text(TINY_TOML.replace("depth = 1", "depth = 6")),
                                              ["train", "--data", fx["ct"], "--config", t / "c.toml",
                                               "--out", t / "r"])[1], "depth"),
    "train-config-missing": (lambda fx, t: ["train", "--data", fx["ct"], "--config", t / "no.toml", "--out", t / "r"],
                             "no.toml"),
    "train-config-binary": (lambda fx, t: ((t / "b.toml").write_bytes(b"\xff\xfe\x00"),
                                           ["train", "--data", fx["ct"], "--config", t / "b.toml",
                                            "--out", t / "r"])[1], "b.toml"),
    "train-config-is-folder": (lambda fx, t: ["train", "--data", fx["ct"], "--config", t, "--out", t / "r"], "file"),
    "train-config-train-not-a-table": (lambda fx, t: ((t / "c.toml").write_text("train = 3\n"),
                                                      ["train", "--data", fx["ct"], "--config", t / "c.toml",
                                                       "--out", t / "r"])[1], "[train]"),
    "train-config-unknown-field": (lambda fx, t: ((t / "c.toml").write_text(TINY_TOML + "lr = 1\n"),
                                                  ["train", "--data", fx["ct"], "--config", t / "c.toml",
                                                   "--out", t / "r"])[1], "lr"),
    "train-val-is-data": (lambda fx, t: ["train", "--data", fx["ct"], "--val", fx["ct"], "--config", fx["toml"],
                                         "--out", t / "r"], "--val"),
    "train-data-is-denoised-file": (lambda fx, t: ["train", "--data", fx["denoised"], "--config", fx["toml"],
                                                   "--out", t / "r"], "format"),
    "evaluate-results-is-prepared-file": (lambda fx, t: ["evaluate", "--data", fx["ct"], "--results", f"A={fx['ct']}",
                                                         "--out", t / "rep"], "format"),
    "denoise-run-is-a-file": (lambda fx, t: ["denoise", "--run", fx["ct"], "--data", fx["ct"], "--out", t / "d.h5"],
                              "--run"),
    "demo-out-is-file": (lambda fx, t: ((t / "f").write_text("x"), ["demo", "ct", "--quick", "--out", t / "f"])[1],
                         "file"),
    "train-data-missing": (lambda fx, t: ["train", "--data", t / "no.h5", "--config", fx["toml"], "--out", t / "r"],
                           "no.h5"),
    "train-data-not-hdf5": (lambda fx, t: ((t / "x.h5").write_text("not hdf5"),
                                           ["train", "--data", t / "x.h5", "--config", fx["toml"],
                                            "--out", t / "r"])[1], "x.h5"),
    "train-mr-data-ct-config": (lambda fx, t: ["train", "--data", fx["mr"], "--config", fx["toml"], "--out", t / "r"],
                                "channel"),
    "train-val-other-modality": (lambda fx, t: ((t / "c.toml").write_text(TINY_TOML + "channels = 2\n"),
                                                ["train", "--data", fx["mr"], "--val", _mr_as_ct(t), "--config",
                                                 t / "c.toml", "--out", t / "r"])[1], "modality"),
    "train-noise2clean-without-reference": (lambda fx, t: ["train", "--data",
                                                           write_prepared_file(t / "n.h5", reference=False),
                                                           "--config", fx["toml"], "--method", "noise2clean",
                                                           "--out", t / "r"], "reference"),
    "denoise-batch-size-0": (lambda fx, t: ["denoise", "--run", fx["run"], "--data", fx["ct"], "--batch-size", "0",
                                            "--out", t / "d.h5"], "--batch-size"),
    "denoise-variant-bogus": (lambda fx, t: ["denoise", "--run", fx["run"], "--data", fx["ct"], "--variant", "bogus",
                                             "--out", t / "d.h5"], "--variant"),
    "denoise-device-tpu": (lambda fx, t: ["denoise", "--run", fx["run"], "--data", fx["ct"], "--device", "tpu",
                                          "--out", t / "d.h5"], "--device"),
    "denoise-other-modality": (lambda fx, t: ["denoise", "--run", fx["run"], "--data", fx["mr"], "--out", t / "d.h5",
                                              "--device", "cpu"], "channel"),
    "denoise-other-size": (lambda fx, t: ["denoise", "--run", fx["run"], "--data", fx["ct64"], "--out", t / "d.h5",
                                          "--device", "cpu"], "x1"),
    "demo-device-tpu": (lambda fx, t: ["demo", "ct", "--device", "tpu", "--out", t / "demo"], "--device"),
    "evaluate-results-replaces-baseline": (lambda fx, t: ["evaluate", "--data", fx["ct"], "--results",
                                                          f"FBP={fx['denoised']}", "--out", t / "rep"], "FBP"),
    "evaluate-results-repeated-name": (lambda fx, t: ["evaluate", "--data", fx["ct"], "--results",
                                                      f"A={fx['denoised']}", f"A={fx['denoised']}", "--out", t / "rep"],
                                       "repeated"),
    "evaluate-results-without-name": (lambda fx, t: ["evaluate", "--data", fx["ct"], "--results", str(fx["denoised"]),
                                                     "--out", t / "rep"], "NAME=PATH"),
    "evaluate-runs-missing": (lambda fx, t: ["evaluate", "--data", fx["ct"], "--runs", f"A={t / 'nope'}",
                                             "--out", t / "rep"], "--runs"),
    "evaluate-other-modality": (lambda fx, t: ["evaluate", "--data", fx["mr"], "--results", f"A={fx['denoised']}",
                                               "--out", t / "rep"], "modality"),
    "evaluate-other-size": (lambda fx, t: ["evaluate", "--data", fx["ct64"], "--results", f"A={fx['denoised']}",
                                           "--out", t / "rep"], "den.h5"),
    "evaluate-without-reference": (lambda fx, t: ["evaluate", "--data",
                                                  write_prepared_file(t / "n.h5", reference=False),
                                                  "--out", t / "rep"], "reference"),
    "no-subcommand": (lambda fx, t: [], "required"),
    "unknown-option": (lambda fx, t: ["denoise", "--run", fx["run"], "--data", fx["ct"], "--out", t / "d.h5",
                                      "--frobnicate"], "frobnicate"),
    # ---- file contents
    "npz-string-array": (lambda fx, t: PCT + ["--images", _npz(t / "s.npz", hu=np.array([["a", "b"], ["c", "d"]])),
                                              "--pixel-spacing-mm", "1", "--out", t / "o.h5"], "hu"),
    "npz-object-array": (lambda fx, t: PCT + ["--images", _npz(t / "o.npz", hu=np.array([None, 1], dtype=object)),
                                              "--pixel-spacing-mm", "1", "--out", t / "o.h5"], "hu"),
    "npy-complex-images": (lambda fx, t: (np.save(t / "c.npy", np.ones((1, 8, 8), np.complex64)),
                                          PCT + ["--images", t / "c.npy", "--pixel-spacing-mm", "1",
                                                 "--out", t / "o.h5"])[1], "complex"),
    "npz-zero-slices": (lambda fx, t: PCT + ["--images", _npz(t / "z.npz", hu=np.zeros((0, 8, 8)),
                                                              pixel_spacing_mm=np.zeros(0)), "--out", t / "o.h5"],
                        "hu"),
    "npz-spacing-wrong-length": (lambda fx, t: PCT + ["--images", _npz(t / "w.npz", hu=np.zeros((2, 8, 8)),
                                                                       pixel_spacing_mm=np.ones(3)),
                                                      "--out", t / "o.h5"], "pixel_spacing_mm"),
    "npz-spacing-zero": (lambda fx, t: PCT + ["--images", _npz(t / "w.npz", hu=np.zeros((1, 8, 8)),
                                                               pixel_spacing_mm=np.zeros(1)), "--out", t / "o.h5"],
                         "pixel_spacing_mm"),
    "npz-spacing-negative": (lambda fx, t: PCT + ["--images", _npz(t / "w.npz", hu=np.zeros((1, 8, 8)),
                                                                   pixel_spacing_mm=-np.ones(1)), "--out", t / "o.h5"],
                             "pixel_spacing_mm"),
    "npz-spacing-nan": (lambda fx, t: PCT + ["--images", _npz(t / "w.npz", hu=np.zeros((1, 8, 8)),
                                                              pixel_spacing_mm=np.full(1, np.nan)),
                                             "--out", t / "o.h5"], "pixel_spacing_mm"),
    "npz-spacing-strings": (lambda fx, t: PCT + ["--images", _npz(t / "w.npz", hu=np.zeros((1, 8, 8)),
                                                                  pixel_spacing_mm=np.array(["x"])),
                                                 "--out", t / "o.h5"], "pixel_spacing_mm"),
    "npz-nan-images": (lambda fx, t: PCT + ["--images", _npz(t / "n.npz", hu=np.full((1, 8, 8), np.nan),
                                                             pixel_spacing_mm=np.ones(1)), "--out", t / "o.h5"], "hu"),
    "npz-not-square": (lambda fx, t: PCT + ["--images", _npz(t / "r.npz", hu=np.zeros((1, 8, 9)),
                                                             pixel_spacing_mm=np.ones(1)), "--out", t / "o.h5"],
                       "square"),
    "npz-truncated": (lambda fx, t: ((t / "t.npz").write_bytes(fx["npz"].read_bytes()[:100]),
                                     PCT + ["--images", t / "t.npz", "--out", t / "o.h5"])[1], "t.npz"),
    "dicom-rescale-slope-0": (lambda fx, t: PCT + ["--images", _dicom(fx["dicom"], t / "s.dcm", RescaleSlope=0),
                                                   "--out", t / "o.h5"], "RescaleSlope"),
    "dicom-pixel-spacing-0": (lambda fx, t: PCT + ["--images", _dicom(fx["dicom"], t / "s.dcm", PixelSpacing=[0, 0]),
                                                   "--out", t / "o.h5"], "PixelSpacing"),
    "dicom-folder-only-readme": (lambda fx, t: ((t / "dcm").mkdir(), (t / "dcm" / "README").write_text("notes"),
                                                PCT + ["--images", t / "dcm", "--out", t / "o.h5"])[2], "DICOM"),
    "sinograms-group": (lambda fx, t: PCT + ["--sinograms", _h5(t / "g.h5", sinograms="GROUP"), "--out", t / "o.h5"],
                        "sinograms"),
    "sinograms-strings": (lambda fx, t: PCT + ["--sinograms", _h5(t / "g.h5", sinograms=np.array([b"a", b"b"])),
                                               "--out", t / "o.h5"], "sinograms"),
    "sinograms-zero-slices": (lambda fx, t: PCT + ["--sinograms", _h5(t / "z.h5", sinograms=np.zeros((0, 360, 184))),
                                                   "--out", t / "o.h5"], "slice"),
    "sinograms-nan": (lambda fx, t: PCT + ["--sinograms", _h5(t / "n.h5", sinograms=np.full((1, 360, 184), np.nan)),
                                           "--out", t / "o.h5"], "finite"),
    "counts-i0-nan": (lambda fx, t: PCT + ["--sinograms", _h5(t / "c.h5", counts=np.full((1, 360, 184), 100.0),
                                                              i0=np.nan), "--out", t / "o.h5"], "i0"),
    "counts-i0-wrong-length": (lambda fx, t: PCT + ["--sinograms", _h5(t / "c.h5", counts=np.full((1, 360, 184), 100.0),
                                                                       i0=np.full(5, 1e5)), "--out", t / "o.h5"], "i0"),
    "counts-i0-zero": (lambda fx, t: PCT + ["--sinograms", _h5(t / "c.h5", counts=np.full((1, 360, 184), 100.0),
                                                               i0=0.0), "--out", t / "o.h5"], "i0"),
    "counts-i0-group": (lambda fx, t: PCT + ["--sinograms", _h5(t / "c.h5", counts=np.full((1, 360, 184), 100.0),
                                                                i0="GROUP"), "--out", t / "o.h5"], "i0"),
    "sinograms-reference-group": (lambda fx, t: PCT + ["--sinograms", _h5(t / "r.h5", sinograms=np.zeros((1, 360, 184)),
                                                                          reference="GROUP"), "--out", t / "o.h5"],
                                  "reference"),
    "sinograms-slice-id-group": (lambda fx, t: PCT + ["--sinograms", _h5(t / "r.h5", sinograms=np.zeros((1, 360, 184)),
                                                                         slice_id="GROUP"), "--out", t / "o.h5"],
                                 "slice_id"),
    "mr-center-lines-too-few-for-espirit": (lambda fx, t: PMR + ["--kspace", fx["kspace"], "--center-lines", "4",
                                                                 "--out", t / "o.h5"], "ESPIRiT"),
    "kspace-all-zero": (lambda fx, t: PMR + ["--kspace", _kspace(t / "z.npz", np.zeros_like(K)), "--center-lines", "4",
                                             "--out", t / "o.h5"], "zero"),
    "kspace-times-1e30": (lambda fx, t: PMR + ["--kspace", _kspace(t / "b.npz", K * 1e30), "--center-lines", "12",
                                               "--acceleration", "2",
                                               "--device", "cpu", "--out", t / "o.h5"], "overflow"),
    "kspace-times-1e17": (lambda fx, t: PMR + ["--kspace", _kspace(t / "b.npz", K * 1e17), "--center-lines",
                                                            "12", "--acceleration", "2", "--device", "cpu",
                                                            "--out", t / "o.h5"], "overflow"),
    "kspace-nan": (lambda fx, t: PMR + ["--kspace", _kspace(t / "n.npz", K * np.nan), "--out", t / "o.h5"], "finite"),
    "kspace-real": (lambda fx, t: PMR + ["--kspace", _kspace(t / "r.npz", K.real), "--out", t / "o.h5"], "complex"),
    "kspace-object-array": (lambda fx, t: PMR + ["--kspace", _kspace(t / "o.npz", np.array([None, 1], dtype=object)),
                                                 "--out", t / "o.h5"], "kspace"),
    "kspace-zero-slices": (lambda fx, t: PMR + ["--kspace", _kspace(t / "e.npz", K[:0]), "--out", t / "o.h5"],
                           "kspace"),
    "kspace-h5-group": (lambda fx, t: PMR + ["--kspace", _h5(t / "g.h5", kspace="GROUP"), "--out", t / "o.h5"],
                        "kspace"),
    "kspace-missing": (lambda fx, t: PMR + ["--kspace", t / "none.h5", "--out", t / "o.h5"], "none.h5"),
    "prepared-x1-group": (lambda fx, t: ["train", "--data", _h5(t / "p.h5", x1="GROUP"), "--out", t / "r"], "p.h5"),
    "prepared-x1-group-with-format": (lambda fx, t: ["train", "--data", _prepared_with_group(t / "p.h5"),
                                                     "--config", fx["toml"], "--out", t / "r"], "x1"),
}


def _mr_as_ct(t: Path) -> Path:
    """An MR-shaped (2-channel) file that claims to be CT: validation data of another modality."""
    path = write_prepared_file(t / "v.h5", "mr", 2)
    with h5py.File(path, "a") as f:
        f.attrs["modality"] = "ct"
    return path


def _prepared_with_group(path: Path) -> Path:
    write_prepared_file(path)
    with h5py.File(path, "a") as f:
        del f["x1"]
        f.create_group("x1")
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, fx, tmp_path, capsys):
    build, expected = CASES[case]
    argv = build(fx, tmp_path)
    before = snapshot(fx["dir"], tmp_path)
    code, err = run_cli(argv, capsys)
    after = snapshot(fx["dir"], tmp_path)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert expected in lines[0], lines[0]
    assert before == after, "files created, changed or removed: " + ", ".join(
        sorted(set(before.items()) ^ set(after.items()), key=str)[:1][0])


def test_blocked_pickle_and_missing_run_messages_do_not_mislead(fx, tmp_path, capsys):
    _, err = run_cli(CASES["denoise-blocked-pickle"][0](fx, tmp_path), capsys)
    assert "weights_only=False" not in err and "could run code" in err
    _, err = run_cli(CASES["denoise-missing-run"][0](fx, tmp_path), capsys)
    assert "--resume" not in err and "not found" in err


def test_identical_halves_refusal_says_why(fx, tmp_path, capsys):
    _, err = run_cli(CASES["mr-identical-halves"][0](fx, tmp_path), capsys)
    assert "8" in err and "outer lines" in err


def test_resume_names_every_differing_field(fx, tmp_path, capsys):
    _, err = run_cli(CASES["train-resume-other-config"][0](fx, tmp_path), capsys)
    assert "learning_rate: 0.0001 in the run, 0.5 now" in err and "seed: 0 in the run, 3 now" in err


# ------------------------------------------------------------------------ faults during a run

def test_diverging_training_names_step_fix_and_kept_checkpoint(fx, tmp_path, capsys):
    code, err = run_cli(["train", "--data", fx["ct"], "--config", fx["toml"], "--learning-rate", "1e30",
                         "--out", tmp_path / "r"], capsys)
    lines = err.strip().splitlines()  # progress bars of the steps before, then the one-line error
    assert code == 2 and "Traceback" not in err and all(ln.startswith("train consensus") for ln in lines[:-1])
    err = lines[-1]
    assert "diverged at step" in err and "--learning-rate" in err and "kept:" in err
    assert "1e+30" in err
    if "checkpoint.pt (step" in err:  # the kept checkpoint is finite
        from tomoconsensus.learn.checkpoints import load_checkpoint
        state = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
        assert all(torch.isfinite(v).all() for m in state["models"].values() for v in m.values()
                   if v.is_floating_point())


def test_sigterm_in_a_step_checkpoints_at_its_end_and_resume_is_exact(fx, tmp_path, capsys, monkeypatch):
    """In-process: SIGTERM arrives in the middle of step 3 (inside the loss); the run saves step 3 and exits 143."""
    from tomoconsensus import methods
    from tomoconsensus.learn.checkpoints import load_checkpoint
    from tomoconsensus.learn.config import load_train_config
    from tomoconsensus.learn.loop import train

    calls = {"n": 0}
    objective = methods.objective

    def objective_then_sigterm(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return objective(*args, **kwargs)

    monkeypatch.setattr(methods, "objective", objective_then_sigterm)
    run = tmp_path / "killed"
    code, err = run_cli(["train", "--data", fx["ct"], "--config", fx["toml"], "--method", "noise2noise", "--out", run,
                         "--epochs", "50"], capsys)
    monkeypatch.setattr(methods, "objective", objective)
    assert code == 128 + signal.SIGTERM and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted: SIGTERM at step 3 of")
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored
    config = load_train_config(fx["toml"], {"method": "noise2noise", "epochs": 50})
    train(config, fx["ct"], tmp_path / "ref", stop_after_steps=3, progress=False)
    a, b = (load_checkpoint(p / "checkpoint.pt") for p in (tmp_path / "ref", run))
    assert a["step"] == b["step"] == 3
    assert all(torch.equal(a["models"]["f"][k], b["models"]["f"][k]) for k in a["models"]["f"])
    straight = train(config, fx["ct"], tmp_path / "straight", stop_after_steps=6, progress=False)
    resumed = train(config, fx["ct"], run, resume=True, stop_after_steps=6, progress=False)
    c, d = (r.models["f"].state_dict() for r in (straight, resumed))
    assert all(torch.equal(c[k], d[k]) for k in c)


def test_sigterm_during_prepare_leaves_nothing(fx, tmp_path, capsys, monkeypatch):
    """SIGTERM while the output file is being written: exit 143, one line, no temporary file or folder left."""
    from tomoconsensus.data import prepared

    split = prepared.split_and_reconstruct

    def split_then_sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return split(*args, **kwargs)

    monkeypatch.setattr(prepared, "split_and_reconstruct", split_then_sigterm)
    before = snapshot(fx["dir"], tmp_path)
    code, err = run_cli(PCT + ["--sinograms", fx["sino"], "--device", "cpu", "--out", tmp_path / "new" / "p.h5"],
                        capsys)
    assert code == 128 + signal.SIGTERM and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted: stopped by SIGTERM")
    assert snapshot(fx["dir"], tmp_path) == before


@pytest.mark.slow
def test_sigterm_during_training_checkpoints_and_resume_is_exact(fx, tmp_path, monkeypatch):
    """SIGTERM (timeout, batch schedulers) saves a checkpoint at the end of the step, like Ctrl-C."""
    from tomoconsensus.learn.checkpoints import load_checkpoint
    from tomoconsensus.learn.config import load_train_config
    from tomoconsensus.learn.loop import train

    toml = tmp_path / "long.toml"
    toml.write_text(TINY_TOML.replace("epochs = 2", "epochs = 400").replace("checkpoint_every_steps = 1",
                                                                             "checkpoint_every_steps = 100000"))
    run = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tomoconsensus.cli", "train", "--data", str(fx["ct"]), "--config",
                             str(toml), "--method", "noise2noise", "--out", str(run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = run / "log.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 2):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    lines = err.strip().splitlines()  # progress bars (stderr), then one line
    assert all(ln.startswith("train noise2noise") for ln in lines[:-1]) and "Traceback" not in err
    assert lines[-1].startswith("interrupted: SIGTERM at step") and "checkpoint saved" in lines[-1]
    step = load_checkpoint(run / "checkpoint.pt")["step"]
    assert 2 <= step < 1600 and not list(run.glob(".*.tmp-*"))
    config = load_train_config(toml, {"method": "noise2noise"})
    # the checkpoint is the state at the end of step `step`, as in a run stopped there; the same
    # thread count as the killed process (train keeps a user-set OMP_NUM_THREADS), or sums differ
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(config, fx["ct"], tmp_path / "ref", stop_after_steps=step, progress=False)
        a, b = (load_checkpoint(p / "checkpoint.pt") for p in (tmp_path / "ref", run))
        assert a["step"] == b["step"] and all(torch.equal(a["models"][n][k], b["models"][n][k])
                                              for n in a["models"] for k in a["models"][n])
        # and resuming it continues exactly as an uninterrupted run
        straight = train(config, fx["ct"], tmp_path / "straight", stop_after_steps=step + 2, progress=False)
        resumed = train(config, fx["ct"], run, resume=True, stop_after_steps=step + 2, progress=False)
    finally:
        torch.set_num_threads(threads)
    c, d = (r.models["f"].state_dict() for r in (straight, resumed))
    assert all(torch.equal(c[k], d[k]) for k in c)


# --------------------------------------------------------------------------- what must work

def test_overwrite_replaces_an_existing_output_and_keeps_the_input(fx, tmp_path, capsys):
    out = tmp_path / "p.h5"
    out.write_bytes(b"old")
    sino_hash = hashlib.sha256(fx["sino"].read_bytes()).hexdigest()
    assert main(["prepare", "ct", "--sinograms", str(fx["sino"]), "--geometry", "demo-fanbeam", "--out", str(out),
                 "--overwrite", "--device", "cpu"]) == 0
    assert out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    assert hashlib.sha256(fx["sino"].read_bytes()).hexdigest() == sino_hash


def test_train_overwrite_starts_a_finished_run_again(fx, tmp_path):
    run = _copy_run(fx["run"], tmp_path / "r")
    assert main(["train", "--data", str(fx["ct"]), "--config", str(fx["toml"]), "--out", str(run), "--overwrite",
                 "--max-steps", "1"]) == 0
    assert json.loads((run / "summary.json").read_text())["steps"] == 1
    assert [json.loads(ln)["step"] for ln in (run / "log.jsonl").read_text().splitlines()] == [1]


def test_reused_report_folder_keeps_no_stale_curves(fx, tmp_path):
    report = tmp_path / "rep"
    assert main(["evaluate", "--data", str(fx["ct"]), "--results", f"Consensus={fx['denoised']}",
                 "--runs", f"Consensus={fx['run']}", "--out", str(report)]) == 0
    assert (report / "training_curves.png").exists()
    assert main(["evaluate", "--data", str(fx["ct"]), "--out", str(report), "--overwrite"]) == 0
    assert not (report / "training_curves.png").exists() and "Consensus" not in (report / "metrics.md").read_text()


def test_dicomdir_and_readme_in_a_dicom_folder_are_skipped(tmp_path):
    from pydicom.dataset import FileMetaDataset

    from tomoconsensus.ct.io import read_images

    folder = tmp_path / "study"
    shutil.copytree(DATA / "ct" / "dicom", folder)
    (folder / "README").write_text("exported by the PACS\n")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.FileSetID = "TEST"
    ds.save_as(folder / "DICOMDIR", enforce_file_format=True)
    stack = read_images(folder)
    assert len(stack.hu) == 2 and "DICOMDIR" not in stack.slice_ids


def test_atomic_write_cleans_up_on_error_and_stale_temporaries_of_dead_processes(tmp_path):
    from tomoconsensus.atomic import atomic_path, temp_name, write_text_atomic

    target = tmp_path / "new" / "deeper" / "x.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert not (tmp_path / "new").exists()  # neither the temp file nor the folders created for it
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = temp_name(tmp_path / "y.h5").with_name(temp_name(tmp_path / "y.h5").name.replace(str(os.getpid()),
                                                                                              str(dead.pid)))
    stale.write_text("left by kill -9")
    alive = temp_name(tmp_path / "z.h5").with_name(temp_name(tmp_path / "z.h5").name.replace(str(os.getpid()),
                                                                                              str(os.getppid())))
    alive.write_text("another process is writing")
    other_host = tmp_path / f".w.h5.tmp-{dead.pid}-some-other-host"
    other_host.write_text("another machine on a shared file system")
    write_text_atomic(tmp_path / "a.txt", "x")
    assert not stale.exists() and alive.exists() and other_host.exists()

"""Contract suite of issue 23 (lost data, faults, concurrency): one test per pattern, every command.

Patterns:

1. an output is never an input, never holds one and never lies inside an input folder, ``--overwrite`` or not;
2. a folder output holding files the toolkit did not write is never replaced, and a file where a folder is
   expected is refused and left untouched (``--overwrite`` removes only the toolkit's own files; the demo too);
3. a finished run whose summary.json is missing keeps its model.pt on ``--resume``;
4. an output another process is writing (claimed) is refused "in use", one line, exit 2; stale claims of dead
   processes are cleaned;
5. a crafted checkpoint, model or run_info.json is one line naming the file and the field;
6. a full disk or a file-size limit is one line ("... while writing PATH"), exit 2, nothing partial, the last
   good checkpoint kept; no crash of HDF5 at exit;
7. nothing is left behind by a failed train or distill, nor by a killed writer (stale temporary folders).

Refusals run ``tomoconsensus.cli.main`` in-process and compare SHA-256 snapshots of every file before and after.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pathlib
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tomoconsensus.cli import main

from tests.ct.test_dicom_denoise import make_run, phantom_stored, write_series
from tests.test_cli_contract import TINY_TOML, run_cli, snapshot, write_prepared_file

ROOT = Path(__file__).resolve().parents[1]
PCT = ["prepare", "ct", "--geometry", "demo-fanbeam", "--device", "cpu"]


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """Inputs shared by the cases (never to be modified): prepared files, a finished run, an image run, a series."""
    from tomoconsensus.learn.config import load_train_config
    from tomoconsensus.learn.loop import train

    d = tmp_path_factory.mktemp("reliability")
    paths = {"dir": d, "ct": write_prepared_file(d / "ct.h5"), "toml": d / "tiny.toml"}
    paths["toml"].write_text(TINY_TOML)
    paths["run"] = d / "run"
    train(load_train_config(paths["toml"], {"method": "consensus"}), paths["ct"], paths["run"], progress=False)
    paths["image_run"] = make_run(d / "image_run")
    paths["series"] = d / "series"
    write_series(paths["series"], phantom_stored(2), [0.0, 5.0])
    paths["npy"] = d / "hu.npy"
    np.save(paths["npy"], phantom_stored(2).astype(np.float32) - 1024)
    paths["sino"] = d / "sino.h5"
    with h5py.File(paths["sino"], "w") as f:
        f["sinograms"] = np.random.default_rng(0).uniform(0.4, 0.6, (2, 360, 184)).astype(np.float32)
    return paths


def _refused(argv, fx, tmp_path, capsys, expected: str) -> str:
    """Run ``argv``: exit 2, one line containing ``expected`` (after progress bars only), no file created, changed
    or removed."""
    before = snapshot(fx["dir"], tmp_path)
    code, err = run_cli(argv, capsys)
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(("denoise ", "train ", "distill: "))]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert expected in lines[0], lines[0]
    assert snapshot(fx["dir"], tmp_path) == before
    return lines[0]


def _denoise_images(fx, src, out, *extra):
    return ["denoise", "--run", fx["image_run"], "--images", src, "--out", out, "--device", "cpu", *extra]


# ------------------------------------------------------------------ 1. outputs never are, hold or sit in inputs

APART = {
    "images-out-is-the-run": lambda fx, t: _denoise_images(fx, fx["series"], fx["image_run"]),
    "images-out-holds-the-run": lambda fx, t: _denoise_images(fx, fx["series"], fx["dir"]),
    "images-npy-out-inside-the-run": lambda fx, t: _denoise_images(fx, fx["npy"], fx["image_run"] / "d.npy",
                                                                   "--pixel-spacing-mm", "3"),
    "images-out-is-the-series": lambda fx, t: _denoise_images(fx, fx["series"], fx["series"]),
    "images-out-inside-the-series": lambda fx, t: _denoise_images(fx, fx["series"], fx["series"] / "den"),
    "denoise-data-out-is-the-run": lambda fx, t: ["denoise", "--run", fx["run"], "--data", fx["ct"], "--out",
                                                  fx["run"], "--device", "cpu"],
    "prepare-out-is-the-input": lambda fx, t: PCT + ["--sinograms", fx["sino"], "--out", fx["sino"]],
    "distill-out-is-the-teacher": lambda fx, t: ["distill", "--teacher", fx["run"], "--data", fx["ct"], "--config",
                                                 fx["toml"], "--out", fx["run"]],
    "distill-out-inside-the-teacher": lambda fx, t: ["distill", "--teacher", fx["run"], "--data", fx["ct"],
                                                     "--config", fx["toml"], "--out", fx["run"] / "g"],
    "train-out-holds-the-data": lambda fx, t: ["train", "--data", fx["ct"], "--config", fx["toml"], "--out",
                                               fx["dir"]],
}


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("case", sorted(APART))
def test_an_output_is_never_an_input_nor_holds_one(case, overwrite, fx, tmp_path, capsys):
    argv = APART[case](fx, tmp_path) + (["--overwrite"] if overwrite else [])
    line = _refused(argv, fx, tmp_path, capsys, "--out")
    assert any(word in line for word in ("input", "teacher", "a file path")), line


# ------------------------------------------------ 2. the user's files are never replaced, --overwrite or not

def test_overwrite_never_deletes_files_the_toolkit_did_not_write(fx, tmp_path, capsys):
    docs = tmp_path / "mydocs"
    docs.mkdir()
    (docs / "thesis.txt").write_text("two years of work")
    _refused(_denoise_images(fx, fx["series"], docs, "--overwrite"), fx, tmp_path, capsys, "thesis.txt")
    notes = tmp_path / "notes.txt"  # a file where a folder is expected: refused, left as it is
    notes.write_text("mine")
    _refused(_denoise_images(fx, fx["series"], notes, "--overwrite"), fx, tmp_path, capsys, "existing file")
    (tmp_path / "x.npy").mkdir()  # a folder where a file is expected
    _refused(_denoise_images(fx, fx["npy"], tmp_path / "x.npy", "--pixel-spacing-mm", "3", "--overwrite"), fx,
             tmp_path, capsys, "folder")
    _refused(["train", "--data", fx["ct"], "--config", fx["toml"], "--out", docs, "--overwrite"], fx, tmp_path,
             capsys, "thesis.txt")
    # an earlier output of the command itself is replaced
    out = tmp_path / "den"
    for _ in range(2):
        assert main([str(a) for a in _denoise_images(fx, fx["series"], out, "--overwrite")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["slice_0000.dcm", "slice_0001.dcm"]


def test_demo_overwrite_removes_only_the_demos_files(tmp_path):
    from tomoconsensus.study.folder import claim_demo_folder, demo_files
    from tomoconsensus.study.runner import demo_protocol

    pet = tmp_path / "pet"
    claim_demo_folder(pet, "pet", demo_protocol("pet", quick=True))
    written = ["pet_train.h5", "pet_test_prompts.h5", "pet_test_regions.npz", "denoised_consensus_z.h5",
               "runs/consensus/model.pt", "runs/distill/teacher_train.h5", "runs/distill/.tomoconsensus.lock",
               "report/metrics.md", "report/pet_quality.json"]
    mine = ["my_analysis.txt", "runs/consensus/my_notes.md", "report/figure_for_paper.png", "pet_train.h5.bak"]
    for name in written + mine:
        (pet / name).parent.mkdir(parents=True, exist_ok=True)
        (pet / name).write_text(name)
    assert sorted(str(p.relative_to(pet)) for p in demo_files(pet)) == sorted(["demo_protocol.json", *written])
    claim_demo_folder(pet, "pet", demo_protocol("pet"), overwrite=True)
    left = sorted(str(p.relative_to(pet)) for p in pet.rglob("*") if p.is_file())
    assert left == sorted(["demo_protocol.json", *mine])
    assert all((pet / name).read_text() == name for name in mine)
    assert not (pet / "runs" / "distill").exists()  # emptied folders go


# ----------------------------------------------- 3. a finished run without summary.json keeps its model.pt

def test_resume_of_a_run_finished_but_for_its_summary_keeps_the_selected_model(fx, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(fx["run"], run)
    (run / "summary.json").unlink()  # the crash between model.pt and summary.json
    model = torch.load(run / "model.pt", weights_only=True)
    last = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    model["step"], model["validation"] = 2, {"val_consensus": 0.5}  # the selected epoch, before the last step
    model["models"] = {k: {n: t + 1.0 for n, t in w.items()} for k, w in model["models"].items()}
    torch.save(model, run / "model.pt")
    kept = (run / "model.pt").read_bytes()
    argv = ["train", "--data", fx["ct"], "--config", fx["toml"], "--method", "consensus", "--out", run, "--resume"]
    code, err = run_cli(argv, capsys)
    assert code == 0, err
    assert (run / "model.pt").read_bytes() == kept and last > 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_step"] == 2 and summary["steps"] == last and summary["validation"] == {"val_consensus": 0.5}
    _refused(argv, fx, tmp_path, capsys, "finished")  # now final
    # a model.pt beside an unfinished checkpoint is not a run to resume
    partial = tmp_path / "partial"
    shutil.copytree(fx["run"], partial)
    (partial / "summary.json").unlink()
    _edit(partial / "checkpoint.pt", lambda s: s.update(step=2))
    _refused(["train", "--data", fx["ct"], "--config", fx["toml"], "--method", "consensus", "--out", partial,
              "--resume"], fx, tmp_path, capsys, "model.pt")


def test_finish_writes_model_then_summary_and_removes_best(fx, tmp_path, monkeypatch):
    """A crash while writing summary.json: model.pt (the selection) and best.pt stay, --resume finishes."""
    from tomoconsensus.learn import checkpoints
    from tomoconsensus.learn import loop as train_module
    from tomoconsensus.learn.checkpoints import load_checkpoint

    from tests.conftest import tiny_config

    config = tiny_config(method="noise2noise", epochs=3, patch_size=16, batch_size=2, depth=1)
    prepared_ct = fx["ct"]
    val = write_prepared_file(tmp_path / "val.h5", seed=1)
    with h5py.File(val, "a") as f:  # held-out patients
        f["patient_id"][...] = np.array([f"v{i}" for i in range(4)], dtype=h5py.string_dtype())
    write = checkpoints.write_text_atomic

    def crash_on_summary(path, text):
        if Path(path).name == "summary.json":
            raise OSError(errno.EIO, "crash")
        return write(path, text)

    monkeypatch.setattr(checkpoints, "write_text_atomic", crash_on_summary)
    with pytest.raises(OSError):
        train_module.train(config, prepared_ct, tmp_path / "r", val, progress=False)
    monkeypatch.setattr(checkpoints, "write_text_atomic", write)
    selected = load_checkpoint(tmp_path / "r" / "best.pt")["step"]
    kept = (tmp_path / "r" / "model.pt").read_bytes()
    summary = train_module.train(config, prepared_ct, tmp_path / "r", val, resume=True, progress=False)
    assert (tmp_path / "r" / "model.pt").read_bytes() == kept and summary.best_step == selected
    assert not (tmp_path / "r" / "best.pt").exists() and (tmp_path / "r" / "summary.json").exists()


# ------------------------------------------------------------------- 4. a claimed output is "in use"

def _hold(lock: Path) -> int:
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"4242\n")
    return fd


CLAIMED = {
    "prepare-ct": lambda fx, t: PCT + ["--sinograms", fx["sino"], "--out", t / "p.h5"],
    "denoise-data": lambda fx, t: ["denoise", "--run", fx["run"], "--data", fx["ct"], "--out", t / "p.h5",
                                   "--device", "cpu"],
    "denoise-images": lambda fx, t: _denoise_images(fx, fx["series"], t / "p.h5"),
    "evaluate": lambda fx, t: ["evaluate", "--data", fx["ct"], "--out", t / "p.h5"],
    "iq": lambda fx, t: ["iq", "--data", fx["ct"], "--out", t / "p.h5"],
    "demo": lambda fx, t: ["demo", "pet", "--quick", "--out", t / "p.h5"],
    "train": lambda fx, t: ["train", "--data", fx["ct"], "--config", fx["toml"], "--out", t / "p.h5"],
    "distill": lambda fx, t: ["distill", "--teacher", fx["run"], "--data", fx["ct"], "--config", fx["toml"],
                              "--out", t / "p.h5"],
}


@pytest.mark.parametrize("case", sorted(CLAIMED))
def test_an_output_in_use_is_refused_and_a_stale_claim_is_not(case, fx, tmp_path, capsys):
    from tomoconsensus.claims import claim_path
    from tomoconsensus.learn.runs import LOCK_NAME

    out = tmp_path / "p.h5"
    lock = out / LOCK_NAME if case in ("train", "distill") else claim_path(out)
    fd = _hold(lock)
    try:
        line = _refused(CLAIMED[case](fx, tmp_path), fx, tmp_path, capsys, "in use")
    finally:
        os.close(fd)
    assert "4242" in line and str(out) in line


def test_claims_are_released_and_stale_ones_removed(fx, tmp_path):
    from tomoconsensus.claims import claim_output, claim_path

    out = tmp_path / "sub" / "p.h5"
    stale = claim_path(out)
    stale.parent.mkdir()
    stale.write_text("99999\n")  # left by kill -9: nobody holds the lock
    assert main([str(a) for a in PCT + ["--sinograms", fx["sino"], "--out", out]]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["p.h5"]  # the claim file went with the claim
    with claim_output(tmp_path / "new" / "x"):
        assert claim_path(tmp_path / "new" / "x").exists()
    assert not (tmp_path / "new").exists()  # the folder made for the claim is removed again


# --------------------------------------------------- 5. crafted checkpoints, models and run records

def _edit(path: Path, change) -> None:
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


def _shape(state):
    state["models"]["f1"]["head.weight"] = torch.zeros(3, 3, 1, 1)


CHECKPOINT = {
    "step-negative": (lambda s: s.update(step=-5), "step"),
    "step-beyond-planned": (lambda s: s.update(step=10**6), "step"),
    "step-text": (lambda s: s.update(step="3"), "step"),
    "models-missing": (lambda s: s.pop("models"), "models"),
    "network-missing": (lambda s: s["models"].pop("f2"), "models.f2"),
    "weights-of-another-shape": (_shape, "models.f1"),
    "optimizer-missing": (lambda s: s.pop("optimizer"), "optimizer"),
    "rng-a-list": (lambda s: s.update(rng_cpu=[1, 2, 3]), "rng_cpu"),
    "rng-float": (lambda s: s.update(rng_cpu=torch.zeros(5056)), "rng_cpu"),
    "config-a-list": (lambda s: s.update(config=[1]), "config"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT))
def test_a_crafted_checkpoint_names_its_file_and_field(case, fx, tmp_path, capsys):
    change, field = CHECKPOINT[case]
    run = tmp_path / "run"
    shutil.copytree(fx["run"], run)
    (run / "model.pt").unlink()
    (run / "summary.json").unlink()
    _edit(run / "checkpoint.pt", change)
    line = _refused(["train", "--data", fx["ct"], "--config", fx["toml"], "--method", "consensus", "--out", run,
                     "--resume"], fx, tmp_path, capsys, f"field '{field}'")
    assert "checkpoint.pt" in line


MODEL = {
    "models-missing": (lambda s: s.pop("models"), "models"),
    "step-missing": (lambda s: s.pop("step"), "step"),
    "weights-of-another-shape": (_shape, "models.f1"),
}


@pytest.mark.parametrize("case", sorted(MODEL))
def test_a_crafted_model_names_its_file_and_field(case, fx, tmp_path, capsys):
    change, field = MODEL[case]
    run = tmp_path / "run"
    shutil.copytree(fx["run"], run)
    _edit(run / "model.pt", change)
    for argv in (["denoise", "--run", run, "--data", fx["ct"], "--out", tmp_path / "d.h5", "--device", "cpu"],
                 ["distill", "--teacher", run, "--data", fx["ct"], "--config", fx["toml"], "--out", tmp_path / "g"]):
        line = _refused(argv, fx, tmp_path, capsys, f"field '{field}'")
        assert "model.pt" in line


@pytest.mark.parametrize("content", ["[1, 2]", '{"training_data": 3}', "{}"])
def test_a_crafted_run_info_names_its_file(content, fx, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(fx["image_run"], run)
    (run / "run_info.json").write_text(content)
    line = _refused(["denoise", "--run", run, "--images", fx["series"], "--out", tmp_path / "o", "--device", "cpu"],
                    fx, tmp_path, capsys, "training_data")
    assert "run_info.json" in line


# ------------------------------------------------------------------------------------ 6. a full disk

def _limited(argv, limit: int, cwd: Path) -> subprocess.CompletedProcess:
    """``tomoconsensus ARGV`` in a process whose files may not grow beyond ``limit`` bytes (RLIMIT_FSIZE)."""
    code = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "from tomoconsensus.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


class _FullAfter:
    """A file whose writes beyond ``limit`` bytes fail with ENOSPC, as on a full disk."""

    def __init__(self, fh, limit: int):
        self._fh, self._limit = fh, limit

    def write(self, data) -> int:
        if self._fh.tell() + len(memoryview(data).cast("B")) > self._limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)


@pytest.mark.parametrize("command", ["prepare", "denoise"])
def test_a_full_disk_while_writing_hdf5_is_one_line_and_leaves_nothing(command, fx, tmp_path, capsys, monkeypatch):
    from tomoconsensus import hdf5

    init = hdf5._GuardedFile.__init__

    def full_disk(self, path, mode):
        init(self, path, mode)
        self._fh = _FullAfter(self._fh, 20_000)

    monkeypatch.setattr(hdf5._GuardedFile, "__init__", full_disk)
    out = tmp_path / "new" / "o.h5"
    argv = {"prepare": PCT + ["--sinograms", fx["sino"], "--out", out],
            "denoise": ["denoise", "--run", fx["run"], "--data", fx["ct"], "--out", out, "--device", "cpu"]}[command]
    before = snapshot(fx["dir"])
    code, err = run_cli(argv, capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err, err
    assert line.startswith("error: no space left on") and f"while writing {out} ([Errno 28]" in line, line
    assert not (tmp_path / "new").exists() and snapshot(fx["dir"]) == before


@pytest.mark.slow
def test_a_file_size_limit_in_prepare_is_one_line_without_a_crash(fx, tmp_path):
    """The HDF5 library used to crash (SIGSEGV) at exit on a failed write; SIGXFSZ used to kill the process."""
    before = snapshot(fx["dir"])
    out = tmp_path / "new" / "p.h5"
    proc = _limited(PCT + ["--sinograms", fx["sino"], "--out", out], 200_000, tmp_path)
    line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert line.startswith("error: the file-size limit") and f"while writing {out}" in line, line
    assert not (tmp_path / "new").exists() and snapshot(fx["dir"]) == before


@pytest.mark.slow
@pytest.mark.parametrize("command", ["denoise", "denoise-images", "train", "distill"])
def test_a_file_size_limit_in_other_commands_is_one_line(command, fx, tmp_path):
    argv = {"denoise": ["denoise", "--run", fx["run"], "--data", fx["ct"], "--out", tmp_path / "o" / "d.h5"],
            "denoise-images": _denoise_images(fx, fx["npy"], tmp_path / "o" / "d.npy", "--pixel-spacing-mm", "3"),
            "train": ["train", "--data", fx["ct"], "--config", fx["toml"], "--out", tmp_path / "o"],
            "distill": ["distill", "--teacher", fx["run"], "--data", fx["ct"], "--config", fx["toml"],
                        "--out", tmp_path / "o"]}[command]
    proc = _limited(argv, 2_000, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "file-size limit" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "o").exists()


class _FullLog:
    """log.jsonl on a disk that fills at its third line (the first two steps are logged and checkpointed)."""

    def __init__(self, fh):
        self._fh, self._lines = fh, 0

    def write(self, text: str) -> int:
        self._lines += 1
        if self._lines > 2:
            self._fh.write(text[:7])  # a line cut short
            self._fh.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._fh.write(text)

    def __getattr__(self, name):
        return getattr(self._fh, name)


@pytest.mark.parametrize("file", ["checkpoint.pt", "log.jsonl"])
def test_a_full_disk_in_training_keeps_the_last_good_checkpoint(file, fx, tmp_path, capsys, monkeypatch):
    from tomoconsensus.learn import loop as train_module
    from tomoconsensus.learn.checkpoints import load_checkpoint

    calls = {"n": 0}
    write_bytes = pathlib.Path.write_bytes

    def full_after_two(self, data):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_bytes(self, data)

    if file == "checkpoint.pt":
        monkeypatch.setattr(pathlib.Path, "write_bytes", full_after_two)
    else:
        monkeypatch.setattr(train_module, "open", lambda *a, **k: _FullLog(open(*a, **k)), raising=False)
    run = tmp_path / "r"
    code, err = run_cli(["train", "--data", fx["ct"], "--config", fx["toml"], "--out", run], capsys)
    monkeypatch.undo()
    line = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err
    assert line.startswith("error: no space left on") and f"while writing {run / file}" in line, line
    assert "kept:" in line and "(step 2)" in line and "--resume" in line
    assert load_checkpoint(run / "checkpoint.pt", training=True)["step"] == 2
    assert not [p for p in run.iterdir() if p.name.startswith(".")]
    if file == "checkpoint.pt":
        with open(run / "log.jsonl", "a") as log:  # a line cut short by the full disk
            log.write('{"split": "train", "st')
    code, err = run_cli(["train", "--data", fx["ct"], "--config", fx["toml"], "--out", run, "--resume"], capsys)
    assert code == 0, err
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[:2] == [1, 2] and steps[2] == 3


# ------------------------------------------------------------------------------ 7. nothing left behind

def test_failed_train_and_distill_leave_nothing(fx, tmp_path, capsys, monkeypatch):
    from tomoconsensus.learn import loop as train_module

    def fail(config):
        raise RuntimeError("seed out of range")

    monkeypatch.setattr(train_module, "build_models", fail)
    with pytest.raises(RuntimeError):
        main(["train", "--data", str(fx["ct"]), "--config", str(fx["toml"]), "--out", str(tmp_path / "t")])
    monkeypatch.undo()
    assert not (tmp_path / "t").exists()
    from tomoconsensus import distillation as distill_module
    from tomoconsensus.errors import RunError

    def refuse(*args, **kwargs):  # the trainer fails after the teacher outputs were written
        assert (tmp_path / "g" / "teacher_train.h5").is_file()
        raise RunError("the trainer refused")

    monkeypatch.setattr(distill_module, "train", refuse)
    _refused(["distill", "--teacher", fx["run"], "--data", fx["ct"], "--config", fx["toml"], "--out", tmp_path / "g"],
             fx, tmp_path, capsys, "the trainer refused")
    assert not (tmp_path / "g").exists()


def test_stale_temporary_folders_of_dead_processes_are_removed(fx, tmp_path):
    from tomoconsensus.atomic import temp_name

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "den"
    stale = Path(str(temp_name(out)).replace(f"-{os.getpid()}-", f"-{dead.pid}-"))
    stale.mkdir()
    (stale / "slice_0000.dcm").write_bytes(b"half")
    alive = Path(str(temp_name(tmp_path / "other")).replace(f"-{os.getpid()}-", f"-{os.getppid()}-"))
    alive.mkdir()
    lookalike = tmp_path / "den.tmp-1"  # not the temporary pattern (no leading dot): a user's folder
    lookalike.mkdir()
    assert main([str(a) for a in _denoise_images(fx, fx["series"], out)]) == 0
    assert not stale.exists() and alive.is_dir() and lookalike.is_dir()

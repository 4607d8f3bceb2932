"""Distillation of a trained run into one image network (tomoconsensus.distillation)."""

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tomoconsensus import methods
from tomoconsensus.cli import main
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.denoising import denoise, read_denoised
from tomoconsensus.distillation import distill
from tomoconsensus.learn.checkpoints import build_models, load_checkpoint, save_model
from tomoconsensus.learn.config import config_to_toml
from tomoconsensus.learn.loop import train
from tomoconsensus.learn.trained import load_trained

from tests.conftest import tiny_config


def _bias_teacher(run_dir: Path, bias: float) -> Path:
    """A finished Noise2Noise 'run' whose network is exactly f(x) = x + bias (known teacher output)."""
    config = tiny_config(method="noise2noise")
    models = build_models(config)
    with torch.no_grad():
        models["f"].head.bias.fill_(bias)  # the head weights start at zero: f(x) = x + head(.) = x + bias
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text(config_to_toml(config))
    save_model(run_dir / "model.pt", 0, config, models)
    return run_dir


def test_distilled_network_learns_a_known_teacher(prepared_ct, tmp_path):
    # Ground truth: the teacher's output is z = (x1 + x2)/2 + c, i.e. x_est + c in CT (x_est is the FBP of
    # all views, the mean of the two half FBPs to float precision). g starts as the identity (RMSE c).
    c = 0.02  # 20 HU
    teacher = _bias_teacher(tmp_path / "teacher", c)
    summary = distill(tiny_config(learning_rate=3e-3, epochs=6), teacher, prepared_ct, tmp_path / "g", progress=False,
                      warm_start=False)
    copy = read_prepared(tmp_path / "g" / "teacher_train.h5")
    np.testing.assert_allclose(copy.teacher, copy.x_est + c, atol=2e-5)
    _, models = load_trained(tmp_path / "g")
    x_est = torch.from_numpy(copy.x_est)
    with torch.no_grad():
        g = models["f"](x_est).numpy()
    rmse = float(np.sqrt(np.mean((g - copy.teacher) ** 2)))
    assert rmse < 0.4 * c, rmse  # measured 0.0023 (2.3 HU) after 24 steps; the identity start: 20 HU
    assert summary.method == "distill" and summary.steps == 24


def _rmse_to_teacher(run: Path) -> float:
    copy = read_prepared(run / "teacher_train.h5")
    _, models = load_trained(run)
    with torch.no_grad():
        g = models["f"](torch.from_numpy(copy.x_est)).numpy()
    return float(np.sqrt(np.mean((g - copy.teacher) ** 2)))


def test_warm_start_begins_at_the_teacher_and_a_different_architecture_starts_at_random(prepared_ct, tmp_path, capsys):
    c = 0.02  # teacher f(x) = x + c; one step at a tiny learning rate leaves g where it started
    teacher = _bias_teacher(tmp_path / "teacher", c)
    config = tiny_config(learning_rate=1e-7, max_steps=1)
    distill(config, teacher, prepared_ct, tmp_path / "warm", progress=False)
    assert "g starts from the teacher's f" in capsys.readouterr().out
    assert _rmse_to_teacher(tmp_path / "warm") < 1e-3 * c  # started at the teacher
    distill(config, teacher, prepared_ct, tmp_path / "cold", progress=False, warm_start=False)
    assert _rmse_to_teacher(tmp_path / "cold") > 0.9 * c  # the seed's identity start is c away
    wider = dataclasses.replace(config, base_features=config.base_features * 2)
    distill(wider, teacher, prepared_ct, tmp_path / "wide", progress=False)
    assert "random start" in capsys.readouterr().out
    assert _rmse_to_teacher(tmp_path / "wide") > 0.9 * c


def test_targets_are_the_teachers_default_output_and_run_records_its_teacher(prepared_ct, prepared_ct_val, tmp_path,
                                                                             demo_geometry):
    teacher = tmp_path / "teacher"
    train(tiny_config(method="consensus", max_steps=4), prepared_ct, teacher, progress=False)
    run = tmp_path / "g"
    distill(tiny_config(), teacher, prepared_ct, run, val_path=prepared_ct_val, progress=False)
    # the stored target is exactly what `denoise` of the teacher gives (its default variant, mean)
    denoise(teacher, prepared_ct, tmp_path / "z.h5", progress=False)
    z, _, attrs = read_denoised(tmp_path / "z.h5")
    assert attrs["variant"] == "mean"
    for name in ("train", "val"):
        copy, source = read_prepared(run / f"teacher_{name}.h5"), read_prepared(prepared_ct)
        np.testing.assert_array_equal(copy.teacher, z)
        np.testing.assert_array_equal(copy.x_est, source.x_est)
        np.testing.assert_array_equal(copy.reference, source.reference)
    info = json.loads((run / "run_info.json").read_text())
    assert info["teacher"]["method"] == "consensus" and info["teacher"]["variant"] == "mean"
    assert info["teacher"]["config_sha256"] == hashlib.sha256((teacher / "config.toml").read_bytes()).hexdigest()
    assert info["teacher"]["run_dir"] == str(teacher.resolve()) and info["teacher"]["step"] == 4
    assert info["training_data"]["pixel_size_mm"] == demo_geometry.pixel_size_mm == 3.0
    assert info["training_data"]["modality"] == "ct" and info["training_data"]["units"] == "HU/1000"
    # model selection on the held-out distillation loss
    lines = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines()]
    val = [ln for ln in lines if ln["split"] == "val"]
    assert len(val) == 2 and "val_rmse_hu" in val[0]
    assert load_checkpoint(run / "model.pt")["step"] == min(val, key=lambda ln: ln["val_distill"])["step"]
    # denoise of the distilled run needs x_est only
    denoise(run, prepared_ct, tmp_path / "g.h5", progress=False)
    out, _, attrs = read_denoised(tmp_path / "g.h5")
    assert (attrs["method"], attrs["variant"]) == ("distill", "full")
    _, models = load_trained(run)
    x_est = torch.from_numpy(read_prepared(prepared_ct).x_est)
    with torch.no_grad():
        direct = methods.output("distill", models, torch.zeros_like(x_est), torch.zeros_like(x_est), x_est).numpy()
    np.testing.assert_allclose(out, direct, atol=1e-6)


def test_resume_is_bit_exact_and_reuses_the_teacher_outputs(prepared_ct, tmp_path):
    teacher = _bias_teacher(tmp_path / "teacher", 0.01)
    config = tiny_config()  # 8 steps, checkpoints every 2
    distill(config, teacher, prepared_ct, tmp_path / "straight", progress=False)
    distill(config, teacher, prepared_ct, tmp_path / "resumed", stop_after_steps=3, progress=False)
    copy = tmp_path / "resumed" / "teacher_train.h5"
    written = copy.stat().st_mtime_ns
    final = distill(config, teacher, prepared_ct, tmp_path / "resumed", resume=True, progress=False)
    assert final.steps == 8 and copy.stat().st_mtime_ns == written
    a, b = (load_checkpoint(tmp_path / r / "model.pt")["models"]["f"] for r in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def _toml(tmp_path: Path, **overrides) -> Path:
    config = dataclasses.replace(tiny_config(), **overrides)
    path = tmp_path / "tiny.toml"
    path.write_text(config_to_toml(config))
    return path


def test_cli_distill_and_its_errors(prepared_ct, tmp_path, capsys):
    teacher = _bias_teacher(tmp_path / "teacher", 0.01)
    args = ["distill", "--teacher", str(teacher), "--data", str(prepared_ct), "--config", str(_toml(tmp_path))]
    assert main(args + ["--out", str(tmp_path / "g"), "--max-steps", "2", "--learning-rate", "1e-3"]) == 0
    assert load_checkpoint(tmp_path / "g" / "model.pt")["config"]["learning_rate"] == 1e-3
    assert "trained distill for 2 steps" in capsys.readouterr().out
    (teacher / "model.pt").rename(teacher / "unfinished.pt")
    assert main(args + ["--out", str(tmp_path / "g2")]) == 2
    assert "model.pt" in capsys.readouterr().err and not (tmp_path / "g2").exists()
    (teacher / "unfinished.pt").rename(teacher / "model.pt")
    mr_args = ["distill", "--teacher", str(teacher), "--data", str(prepared_ct), "--config",
               str(_toml(tmp_path, channels=2)), "--out", str(tmp_path / "g3")]
    assert main(mr_args) == 2
    err = capsys.readouterr().err.strip()
    assert "channels" in err and len(err.splitlines()) == 1 and not (tmp_path / "g3").exists()


def test_distill_refuses_beta_r_which_its_objective_does_not_use(prepared_ct, tmp_path, capsys):
    """``--beta-r`` was accepted and silently ignored: g's objective has no consistency term. One line, exit 2,
    nothing written (not even the teacher's outputs)."""
    teacher = _bias_teacher(tmp_path / "teacher", 0.01)
    assert main(["distill", "--teacher", str(teacher), "--data", str(prepared_ct), "--config", str(_toml(tmp_path)),
                 "--out", str(tmp_path / "g"), "--beta-r", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --beta-r: field 'beta_r': expected no --beta-r with distill") and "3.0" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "g").exists()


def test_distill_follows_the_run_folder_rules(prepared_ct, tmp_path, capsys):
    # a finished run folder is final (as for train); --overwrite distils it again; the teacher's own folder
    # is never an output
    teacher = _bias_teacher(tmp_path / "teacher", 0.01)
    args = ["distill", "--teacher", str(teacher), "--data", str(prepared_ct), "--config", str(_toml(tmp_path)),
            "--max-steps", "2", "--device", "cpu"]
    assert main(args + ["--out", str(tmp_path / "g")]) == 0
    first = (tmp_path / "g" / "model.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--overwrite" in err and len(err.splitlines()) == 1
    assert (tmp_path / "g" / "model.pt").stat().st_mtime_ns == first
    assert main(args + ["--out", str(tmp_path / "g"), "--overwrite"]) == 0
    assert (tmp_path / "g" / "model.pt").stat().st_mtime_ns != first
    assert sorted(p.name for p in (tmp_path / "g").iterdir() if not p.name.startswith(".")) == [
        "checkpoint.pt", "config.toml", "log.jsonl", "model.pt", "run_info.json", "summary.json", "teacher_train.h5"]
    capsys.readouterr()
    assert main(args + ["--out", str(teacher), "--overwrite"]) == 2
    assert "--teacher" in capsys.readouterr().err and (teacher / "model.pt").exists()
    with pytest.raises(SystemExit) as exc:  # the typed --device of train: an argparse error
        main(args + ["--out", str(tmp_path / "g4"), "--device", "cuda:x"])
    assert exc.value.code == 2 and "cuda:x" in capsys.readouterr().err and not (tmp_path / "g4").exists()

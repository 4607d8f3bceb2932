import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tomoconsensus.cli import main
from tomoconsensus.data.denoised import read_denoised
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.denoising import denoise
from tomoconsensus.errors import InputError
from tomoconsensus.learn.checkpoints import load_checkpoint
from tomoconsensus.learn.config import load_train_config
from tomoconsensus.learn.loop import train
from tomoconsensus.learn.trained import load_trained

from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run_dir / "model.pt")
    return {f"{net}.{k}": v for net, sd in state["models"].items() for k, v in sd.items()}


@pytest.mark.parametrize("method", ["consensus", "noise2noise", "noise2clean"])
def test_each_method_trains_logs_and_checkpoints(prepared_ct, prepared_ct_val, tmp_path, method):
    summary = train(tiny_config(method=method), prepared_ct, tmp_path / "run", val_path=prepared_ct_val,
                    progress=False)
    assert summary.steps == 8  # 4 slices x 4 patches / batch 4, 2 epochs
    written = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.toml", "checkpoint.pt", "model.pt", "log.jsonl", "summary.json"} <= written
    lines = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines if ln["split"] == "train"] == list(range(1, 9))
    val = [ln for ln in lines if ln["split"] == "val"]
    assert len(val) == 2 and "val_rmse_hu" in val[-1] and "val_ssim" in val[-1]
    assert all(np.isfinite(v) for v in summary.final_terms.values())
    # model.pt holds the epoch with the lowest held-out self-supervised loss
    best = min(val, key=lambda ln: ln[f"val_{method}"])
    assert load_checkpoint(tmp_path / "run" / "model.pt")["step"] == best["step"] == summary.best_step
    assert not (tmp_path / "run" / "best.pt").exists()


def test_tied_consensus_networks_share_weights(prepared_ct, tmp_path):
    summary = train(tiny_config(method="consensus", tie_networks=True, max_steps=3), prepared_ct, tmp_path / "run",
                    progress=False)
    assert summary.models["f1"] is summary.models["f2"]
    state = load_checkpoint(tmp_path / "run" / "model.pt")["models"]
    assert all(torch.equal(state["f1"][k], state["f2"][k]) for k in state["f1"])


def test_resume_is_bit_exact(prepared_ct, tmp_path):
    config = tiny_config(method="consensus", epochs=3)  # 12 steps, checkpoints every 2
    train(config, prepared_ct, tmp_path / "straight", progress=False)
    partial = train(config, prepared_ct, tmp_path / "resumed", stop_after_steps=5, progress=False)
    assert partial.steps == 5 and not (tmp_path / "resumed" / "model.pt").exists()
    final = train(config, prepared_ct, tmp_path / "resumed", resume=True, progress=False)
    assert final.steps == 12
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))  # no duplicated or missing log lines


def test_existing_run_is_not_overwritten_and_missing_checkpoint_is_named(prepared_ct, tmp_path):
    train(tiny_config(max_steps=2), prepared_ct, tmp_path / "run", progress=False)
    with pytest.raises(InputError, match="finished run.*--overwrite"):
        train(tiny_config(max_steps=2), prepared_ct, tmp_path / "run", progress=False)
    with pytest.raises(InputError, match="checkpoint.pt"):
        train(tiny_config(max_steps=2), prepared_ct, tmp_path / "empty", resume=True, progress=False)


def test_checkpoints_are_loaded_without_unpickling_code(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "tomoconsensus.checkpoint", "payload": print}, evil)  # a pickled function
    with pytest.raises(InputError, match="weights_only"):
        load_checkpoint(evil)


def test_noise2clean_without_reference_is_a_clear_error(tmp_path, demo_geometry):
    from tests.conftest import DATA
    assert main(["prepare", "ct", "--sinograms", str(DATA / "ct" / "htc2022_ta.h5"), "--geometry", "htc2022-fanflat",
                 "--out", str(tmp_path / "noref.h5")]) == 0
    with pytest.raises(InputError, match="reference"):
        train(tiny_config(method="noise2clean"), tmp_path / "noref.h5", tmp_path / "run", progress=False)


def test_config_file_and_overrides(tmp_path):
    cfg = load_train_config(ROOT / "examples" / "ct" / "train.toml", {"epochs": 3, "beta_r": None})
    assert ((cfg.base_features, cfg.patch_size, cfg.batch_size, cfg.epochs, cfg.beta_w, cfg.beta_r)
            == (32, 96, 40, 3, 5e-6, 0.5))
    mr = load_train_config(ROOT / "examples" / "mr" / "train.toml")
    assert (mr.channels, mr.base_features, mr.beta_w, mr.beta_r) == (2, 64, 1e-6, 5.0)
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nmethod = 'noise2void'\n")
    with pytest.raises(InputError, match="bad.toml.*method"):
        load_train_config(bad)


@pytest.mark.parametrize("field, value, expected", [
    ("beta_r", -1.0, "a finite number >= 0"), ("beta_r", float("nan"), "a finite number >= 0"),
    ("beta_r", "0.5", "a value of type float"), ("epochs", 2.5, "an integer"),
    ("tie_networks", 1, "a value of type bool"), ("depth", 17, "an integer in [1, 16]"),
    ("method", "noise2void", "one of consensus"), ("device", "gpu", "auto (GPU when available)"),
])
def test_train_config_checks_every_field_however_it_is_made(tmp_path, field, value, expected):
    """TrainConfig(...) in code, dataclasses.replace and a TOML file: the same check, naming the field and
    the source (TrainConfig for code, the file for TOML)."""
    import dataclasses

    from tomoconsensus.learn.config import TrainConfig

    with pytest.raises(InputError, match=rf"^TrainConfig: field '{field}': expected {re.escape(expected)}"):
        TrainConfig(**{field: value})
    with pytest.raises(InputError, match=rf"^TrainConfig: field '{field}'"):
        dataclasses.replace(TrainConfig(), **{field: value})
    if isinstance(value, float) and value != value:
        return  # TOML writes nan as nan: covered by the two above
    bad = tmp_path / "bad.toml"
    bad.write_text(f"[train]\n{field} = {json.dumps(value)}\n")
    with pytest.raises(InputError, match=rf"bad.toml: field '{field}': expected {re.escape(expected)}"):
        load_train_config(bad)


def test_train_config_takes_integers_for_floats_and_numpy_numbers():
    from tomoconsensus.learn.config import TrainConfig

    config = TrainConfig(learning_rate=1, beta_r=0, epochs=np.int64(3), seed=2.0)
    assert (config.learning_rate, config.beta_r, config.epochs, config.seed) == (1.0, 0.0, 3, 2)
    assert [type(v) for v in (config.beta_r, config.epochs, config.seed)] == [float, int, int]
    with pytest.raises(InputError, match="field 'epochs'"):
        TrainConfig(epochs=np.bool_(True))


def test_cli_names_flags_for_command_line_values_and_the_file_for_toml_values(tmp_path):
    """The library names the field; the command line's layer names the flag that set it (learn.cli.FLAGS)."""
    from tomoconsensus.learn.cli import FLAGS, flag_error
    from tomoconsensus.learn.cli import load_train_config as cli_config
    from tomoconsensus.learn.config import CODE_SOURCE

    with pytest.raises(InputError, match=r"^--beta-r: field 'beta_r': expected a finite number >= 0, got -2.0"):
        cli_config(None, {"method": "consensus", "beta_r": -2.0})
    toml = tmp_path / "c.toml"
    toml.write_text("beta_r = -2.0\n")
    with pytest.raises(InputError, match=r"c.toml: field 'beta_r'"):
        cli_config(toml, {"method": "consensus", "beta_r": None})
    late = InputError(CODE_SOURCE, "batch_size", "a multiple of the 2 processes", 3)  # raised by the trainer
    assert str(flag_error(late)).startswith("--batch-size: field 'batch_size': expected a multiple")
    assert str(flag_error(InputError(CODE_SOURCE, "depth", "x", 9))).startswith("--config: field 'depth'")  # no flag
    assert set(FLAGS) <= {f.name for f in dataclasses_fields()}
    assert all(flag == "--" + field.replace("_", "-") for field, flag in FLAGS.items())


def test_run_folder_errors_name_the_parameter_in_the_library_and_the_flag_on_the_command_line(
        prepared_ct, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=rf"^{re.escape(str(run))}: field 'run_dir': expected a new or empty"):
        train(tiny_config(), prepared_ct, run, progress=False)
    assert main(["train", "--data", str(prepared_ct), "--out", str(run), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {run}: field '--out': expected a new or empty run folder"), err
    assert (run / "notes.txt").read_text() == "mine" and sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_a_trainer_error_about_a_config_field_names_the_flag_or_the_config(prepared_ct, tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text("depth = 4\npatch_size = 8\ndevice = 'cpu'\n")
    with pytest.raises(InputError, match=r"^TrainConfig: field 'depth': expected a UNet whose 4 poolings fit the 8"):
        train(load_train_config(toml), prepared_ct, tmp_path / "lib", progress=False)
    assert main(["train", "--data", str(prepared_ct), "--config", str(toml), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --config: field 'depth': expected a UNet whose 4 poolings") and "\n" not in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "lib").exists()


def dataclasses_fields():
    import dataclasses

    from tomoconsensus.learn.config import TrainConfig

    return dataclasses.fields(TrainConfig)


def test_cli_train_then_denoise_keeps_ids_and_units(prepared_ct, tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("[train]\nbase_features = 4\ndepth = 2\npatch_size = 32\nbatch_size = 4\npatches_per_slice = 4\n"
                   "epochs = 1\ndevice = 'cpu'\n")
    assert main(["train", "--data", str(prepared_ct), "--method", "noise2noise", "--config", str(cfg),
                 "--out", str(tmp_path / "run")]) == 0
    assert "trained noise2noise" in capsys.readouterr().out
    assert main(["denoise", "--run", str(tmp_path / "run"), "--data", str(prepared_ct),
                 "--out", str(tmp_path / "d.h5"), "--device", "cpu"]) == 0
    images, ids, attrs = read_denoised(tmp_path / "d.h5")
    data = read_prepared(prepared_ct)
    assert images.shape == data.x1.shape and ids == data.slice_ids
    assert attrs["units"] == "HU/1000" and attrs["variant"] == "mean"


def test_consensus_variants(prepared_ct, tmp_path):
    """Default 'mean': both networks on m = (x1+x2)/2 (= x_est in CT); 'z' is the paper's Eq. 9."""
    train(tiny_config(method="consensus", max_steps=2), prepared_ct, tmp_path / "run", progress=False)
    out = {}
    for variant in (None, "z", "f1", "full"):
        name = variant or "default"
        summary = denoise(tmp_path / "run", prepared_ct, tmp_path / f"{name}.h5", variant=variant, device="cpu",
                          progress=False)
        assert summary.variant == (variant or "mean")
        out[name] = read_denoised(tmp_path / f"{name}.h5")[0]
    assert not np.array_equal(out["z"], out["f1"]) and not np.array_equal(out["default"], out["z"])
    np.testing.assert_allclose(out["default"], out["full"], atol=1e-4)  # CT: (x1 + x2)/2 = x_est
    config, models = load_trained(tmp_path / "run")
    data = read_prepared(prepared_ct)
    with torch.no_grad():
        m = torch.from_numpy(0.5 * (data.x1 + data.x2))
        expected = (0.5 * (models["f1"](m) + models["f2"](m))).numpy()
    np.testing.assert_allclose(out["default"], expected, atol=1e-5)
    with pytest.raises(ValueError, match="variant"):
        denoise(tmp_path / "run", prepared_ct, tmp_path / "x.h5", variant="bogus", device="cpu", progress=False)


@pytest.mark.slow  # 6 s (two processes); tests/test_multinode.py (slow) runs DDP over two nodes too
def test_two_process_ddp_with_gloo_ends_with_identical_weights(prepared_ct, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "ddp_worker.py"), str(prepared_ct), str(tmp_path / "run")]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "run" / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "run" / "rank1.pt", weights_only=True)
    for net in rank0:
        for key, value in rank0[net].items():
            assert torch.equal(value, rank1[net][key]), f"{net}.{key} differs between ranks"
    head = rank0["f1"]["head.weight"]
    assert head.abs().sum() > 0  # training moved the zero-initialised head


def test_variant_of_another_method_is_refused():
    """'z' (the pair's Eq. 9 output) exists only for consensus; each method names its own variants."""
    from tomoconsensus import methods

    assert methods.check_variant("consensus", None) == "mean"
    with pytest.raises(InputError, match="variant"):
        methods.check_variant("noise2noise", "z")
    with pytest.raises(InputError, match="variant"):
        methods.check_variant("noise2clean", "mean")


def test_a_thread_limit_the_user_set_is_kept(prepared_ct, tmp_path, monkeypatch):
    """OMP_NUM_THREADS=1 (a shared machine) survives training; without it the trainer takes every core."""
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        train(tiny_config(method="noise2noise", max_steps=1), prepared_ct, tmp_path / "a", progress=False)
        assert torch.get_num_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        train(tiny_config(method="noise2noise", max_steps=1), prepared_ct, tmp_path / "b", progress=False)
        assert torch.get_num_threads() == max(1, os.cpu_count() or 1)
    finally:
        torch.set_num_threads(before)


def test_validation_sharing_a_training_patient_is_refused_before_any_work(prepared_ct, tmp_path):
    with pytest.raises(InputError, match="patient_id.*4 shared|patient_id.*shared"):
        train(tiny_config(max_steps=2), prepared_ct, tmp_path / "run", val_path=prepared_ct, progress=False)
    assert not (tmp_path / "run").exists()


def test_run_records_its_patients_criterion_and_monitors(prepared_ct, prepared_ct_val, tmp_path, capsys):
    """run_info.json names the training and validation patients, summary.json the selection key, and a
    monitor file is scored every epoch without changing the selection."""
    run = tmp_path / "run"
    summary = train(tiny_config(method="consensus"), prepared_ct, run, val_path=prepared_ct_val, progress=False,
                    monitor={"again": prepared_ct_val})
    info = json.loads((run / "run_info.json").read_text())
    train_ids = set(read_prepared(prepared_ct).patient_ids)
    assert info["training_data"]["patients"] == sorted(train_ids)
    assert info["validation_data"]["patients"] == sorted("val-" + p for p in train_ids)
    assert json.loads((run / "summary.json").read_text())["selection_criterion"] == "val_consensus"
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "val"]
    mon = [r for r in rows if r["split"] == "monitor:again"]
    assert [r["step"] for r in mon] == [r["step"] for r in val] == [4, 8]
    assert [r["val_consensus"] for r in mon] == pytest.approx([r["val_consensus"] for r in val], rel=1e-6)
    assert summary.best_step in (4, 8)
    # evaluating the run on its own validation patients warns; on its training patients too
    denoise(run, prepared_ct_val, tmp_path / "out.h5", progress=False)
    assert main(["evaluate", "--data", str(prepared_ct_val), "--results", f"C={tmp_path / 'out.h5'}",
                 "--runs", f"C={run}", "--out", str(tmp_path / "report")]) == 0
    err = capsys.readouterr().err
    assert "validated (chose the epoch of) run C" in err and "trained run C" not in err


@pytest.mark.parametrize("method", ["consensus", "noise2noise"])
def test_selection_on_the_output_picks_the_epoch_of_lowest_held_out_operator_error(method, prepared_ct,
                                                                                  prepared_ct_val, tmp_path):
    run = tmp_path / "run"
    summary = train(tiny_config(method=method, epochs=3, selection="output_on_halves"), prepared_ct, run,
                    val_path=prepared_ct_val, progress=False)
    assert json.loads((run / "summary.json").read_text())["selection_criterion"] == "val_output_on_halves"
    val = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"val"' in line]
    assert summary.best_step == min(val, key=lambda r: r["val_output_on_halves"])["step"]


def test_selection_keys_and_refusals():
    from tomoconsensus.learn.config import selection_key

    assert selection_key("consensus", "output_on_halves") == "val_output_on_halves"
    assert selection_key("noise2noise", "loss") == "val_noise2noise"
    assert selection_key("noise2clean", "output_on_halves") == "val_noise2clean"  # supervised: its own loss
    with pytest.raises(InputError, match="selection"):
        tiny_config(selection="clean_rmse")


def test_without_validation_the_summary_names_no_criterion(prepared_ct, tmp_path):
    train(tiny_config(max_steps=2), prepared_ct, tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["selection_criterion"] == ""

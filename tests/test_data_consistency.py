"""Data consistency after the networks (MR): the prepared measurement, lambda chosen on held-out lines,
and the command line."""

import h5py
import numpy as np
import pytest

from tomoconsensus.cli import main
from tomoconsensus.data.prepared import read_measurement, read_prepared
from tomoconsensus.data_consistency import LAMDAS, apply_consistency, choose_lamda
from tomoconsensus.errors import InputError
from tomoconsensus.learn.loop import train
from tomoconsensus.learn.trained import load_trained

from tests.conftest import DATA, tiny_config

TWIX = DATA / "mr" / "twix_gre_phantom_2ch.h5"


@pytest.fixture(scope="module")
def mr_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dc")
    files = {}
    for name, seed, keep in (("train", 0, False), ("val", 1, True), ("test", 2, True)):
        files[name] = folder / f"{name}.h5"
        args = ["prepare", "mr", "--kspace", str(TWIX), "--center-lines", "24", "--seed", str(seed),
                "--out", str(files[name])]
        assert main(args + (["--keep-measurement"] if keep else [])) == 0
    run = folder / "run"
    train(tiny_config(method="consensus", channels=2, patches_per_slice=8), files["train"], run, progress=False)
    return files, run


def test_measurement_is_kept_only_when_asked_and_matches_the_halves(mr_files):
    files, _ = mr_files
    assert read_measurement(files["train"]) == {}
    arrays = read_measurement(files["test"])
    assert arrays["kspace"].shape == (1, 2, 160, 160) and arrays["maps"].shape == (1, 2, 160, 160)
    mask, h1, h2 = (arrays[k][0].astype(bool) for k in ("mask", "half1", "half2"))
    assert np.array_equal(h1 | h2, mask) and (h1 & h2).sum() == 24  # the centre lines are in both halves
    assert np.all(arrays["kspace"][0][:, ~mask] == 0)  # only acquired lines are kept


def test_consistency_limits_and_the_held_out_choice(mr_files):
    files, run = mr_files
    test, val = read_prepared(files["test"]), read_prepared(files["val"])
    images = test.x_est.copy()
    assert np.array_equal(apply_consistency(images, test, float("inf")), images)
    near = apply_consistency(images, test, 1e6)  # a huge weight keeps the prior
    assert np.abs(near - images).max() < 1e-3 * np.abs(images).max()
    # a small weight fits the acquired lines: its k-space on those lines is closer to the data than the prior's
    config, models = load_trained(run, "cpu")
    lamda, errors = choose_lamda(config.method, models, val)
    assert lamda in LAMDAS and len(errors) == len(LAMDAS) and min(errors) < errors[-1]  # consistency helps


def test_denoise_cli_with_data_consistency(mr_files, tmp_path, capsys):
    files, run = mr_files
    out = tmp_path / "dc.h5"
    assert main(["denoise", "--run", str(run), "--data", str(files["test"]), "--out", str(out),
                 "--data-consistency", "auto", "--val", str(files["val"]), "--device", "cpu"]) == 0
    with h5py.File(out) as f:
        assert f.attrs["data_consistency_lambda"] > 0
    plain = tmp_path / "plain.h5"
    assert main(["denoise", "--run", str(run), "--data", str(files["test"]), "--out", str(plain), "--device",
                 "cpu"]) == 0
    with h5py.File(out) as a, h5py.File(plain) as b:
        assert not np.allclose(a["denoised"][()], b["denoised"][()])
    capsys.readouterr()
    # no measurement kept: one line naming the file and what to do
    assert main(["denoise", "--run", str(run), "--data", str(files["train"]), "--out", str(tmp_path / "x.h5"),
                 "--data-consistency", "0.01", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.h5" in err and "--keep-measurement" in err
    assert not (tmp_path / "x.h5").exists()
    assert main(["denoise", "--run", str(run), "--data", str(files["test"]), "--out", str(tmp_path / "y.h5"),
                 "--data-consistency", "auto", "--device", "cpu"]) == 2
    assert "--val" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["denoise", "--run", str(run), "--data", str(files["test"]), "--out", str(tmp_path / "z.h5"),
              "--data-consistency", "-1"])


def test_consistency_is_refused_for_a_modality_without_it(prepared_ct):
    with pytest.raises(InputError, match="modality.*data consistency"):
        apply_consistency(read_prepared(prepared_ct).x_est, read_prepared(prepared_ct), 0.1)


def test_weight_out_of_range_and_non_finite_measurement_are_refused_before_any_output(mr_files, tmp_path, capsys):
    """lambda = 1e300 overflowed the float32 solve and a NaN in /measurement spread to every pixel: both
    gave an all-NaN output with exit 0; now one line naming the option or dataset, nothing written."""
    files, run = mr_files
    nan_file = tmp_path / "nan.h5"
    nan_file.write_bytes(files["test"].read_bytes())
    with h5py.File(nan_file, "a") as f:
        f["measurement/kspace"][0, 0, 80, 80] = np.nan
    capsys.readouterr()
    for data, lamda, expected in ((files["test"], "1e300", "[1e-06, 1e+06]"), (files["test"], "1e-300", "1e-06"),
                                  (nan_file, "0.01", "measurement/kspace")):
        out = tmp_path / "o.h5"
        code = main(["denoise", "--run", str(run), "--data", str(data), "--out", str(out), "--data-consistency",
                     lamda, "--device", "cpu"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and expected in err, err
        assert not out.exists()
    with pytest.raises(InputError, match="lambda"):
        apply_consistency(read_prepared(files["test"]).x_est, read_prepared(files["test"]), 1e300)

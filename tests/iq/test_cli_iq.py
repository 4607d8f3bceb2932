"""``tomoconsensus iq`` and ``denoise --uncertainty`` end to end on 1-slice prepared files and a tiny run."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from tomoconsensus.cli import main
from tomoconsensus.ct.io import read_images
from tomoconsensus.ct.pipeline import ct_modality, simulated_source, write_ct
from tomoconsensus.learn.loop import train

from tests.conftest import EMBEDDED_CT, tiny_config


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, demo_geometry):
    folder = tmp_path_factory.mktemp("iq")
    modality = ct_modality(demo_geometry, "cpu")
    stack = read_images(EMBEDDED_CT)
    path = folder / "one.h5"  # one file serves as training, held-out and test data: this tests the plumbing
    write_ct(path, modality, simulated_source(stack, demo_geometry, 0.25, 0, EMBEDDED_CT, max_slices=1), 0,
             progress=False)
    paths = {"train": path, "val": path}
    run = folder / "run"
    train(tiny_config(method="noise2noise", max_steps=2), paths["train"], run, progress=False)
    return folder, paths, run


def test_iq_reports_fbp_and_a_run_with_a_calibrated_uncertainty(prepared, capsys):
    folder, paths, run = prepared
    out = folder / "report"
    assert main(["iq", "--data", str(paths["train"]), "--val", str(paths["val"]), "--runs", f"N2N={run}",
                 "--realisations", "3", "--no-tv", "--out", str(out)]) == 0
    report = json.loads((out / "iq.json").read_text())
    assert set(report["methods"]) == {"FBP", "N2N"}
    fbp = report["methods"]["FBP"]
    assert fbp["nps"]["parseval_ratio"] == pytest.approx(1.0, abs=0.05)
    assert 20 < fbp["nps"]["noise_hu"] < 40  # the demo's quarter dose: ~29 HU in FBP
    assert [t["contrast_hu"] for t in fbp["ttf"]] == [-100, 10, 50, 340, 990]
    assert 0.06 < fbp["ttf"][-1]["f50_per_mm"] < 0.09  # high contrast: the FBP's own MTF (about 0.075)
    # FBP's halves predict its own noise: calibrated k about 1 on the noisy val file, MSE ratio about 1
    u = fbp["uncertainty"]
    assert u["scale_k"] == pytest.approx(1.0, abs=0.1)
    assert u["test"]["mse_ratio_actual_over_predicted"] == pytest.approx(1.0, abs=0.15)
    assert report["methods"]["N2N"]["uncertainty"]["calibrated_on"] == str(paths["val"])
    for name in ("iq.md", "iq_nps.png", "iq_ttf.png", "iq_dprime.png", "iq_uncertainty.png"):
        assert (out / name).stat().st_size > 0
    assert "| FBP |" in capsys.readouterr().out
    # a second run into the same folder needs --overwrite
    assert main(["iq", "--data", str(paths["train"]), "--realisations", "2", "--no-tv", "--out", str(out)]) == 2


def test_iq_refuses_files_without_dose_and_reserved_names(prepared, tmp_path, capsys):
    folder, paths, run = prepared
    bare = tmp_path / "bare.h5"
    with h5py.File(paths["val"]) as src, h5py.File(bare, "w") as dst:
        for key in src:
            src.copy(key, dst)
        dst.attrs.update({k: v for k, v in src.attrs.items() if k != "dose_fraction"})
    assert main(["iq", "--data", str(bare), "--no-tv", "--out", str(tmp_path / "r")]) == 2
    assert "dose_fraction" in capsys.readouterr().err
    assert main(["iq", "--data", str(paths["val"]), "--runs", f"FBP={run}", "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def test_denoise_writes_the_calibrated_uncertainty_beside_the_output(prepared):
    folder, paths, run = prepared
    out = folder / "denoised.h5"
    assert main(["denoise", "--run", str(run), "--data", str(paths["train"]), "--val", str(paths["val"]),
                 "--uncertainty", "--out", str(out)]) == 0
    with h5py.File(out) as f:
        sigma, denoised = f["uncertainty"][:], f["denoised"][:]
        k = float(f.attrs["uncertainty_scale"])
        assert f.attrs["uncertainty_calibrated_on"] == str(paths["val"])
    assert sigma.shape == denoised.shape and np.all(sigma >= 0) and np.isfinite(sigma).all()
    assert 0 < k < 100 and sigma.max() > 0


def test_iq_simulates_the_split_of_the_prepared_file_and_refuses_one_it_cannot(prepared, tmp_path, capsys):
    from tomoconsensus.ct.iq import read_setup

    folder, paths, run = prepared
    assert read_setup(paths["val"]).split == "views"  # write_ct's default modality: odd/even views
    for kind in ("thinning", "rays"):
        copy = tmp_path / f"{kind}.h5"
        with h5py.File(paths["val"]) as src, h5py.File(copy, "w") as dst:
            for key in src:
                src.copy(key, dst)
            dst.attrs.update({**src.attrs, "split_kind": kind})
        if kind == "thinning":
            assert read_setup(copy).split == "thinning"
        else:
            assert main(["iq", "--data", str(copy), "--no-tv", "--out", str(tmp_path / "r")]) == 2
            assert "split_kind" in capsys.readouterr().err
            assert not (tmp_path / "r").exists()

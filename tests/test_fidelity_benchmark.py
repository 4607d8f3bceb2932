"""benchmarks/fidelity.py: argument parsing, scale description, split and geometry (nothing is trained)."""

import pytest

from tests.benchmark_module import benchmark_module


@pytest.fixture(scope="module")
def fidelity():
    with benchmark_module("fidelity.py", "fidelity_benchmark") as module:
        yield module


def test_defaults_are_the_paper_protocol(fidelity):
    scale, work, result = fidelity.parse_args([])
    assert work is None and result == "fidelity"
    assert (scale.image_size, scale.n_views, scale.base_features, scale.patch_size, scale.batch_size, scale.epochs) == \
        (512, 2304, 32, 96, 40, 100)
    assert scale.describe().startswith("PAPER scale: 512^2 (0.75 mm pixels), 2304 views")
    geom = fidelity.scaled_geometry(scale)
    assert geom.name == "ldct-fanbeam" and geom.image_size == 512


def test_reduced_scale_is_described_and_keeps_the_field_of_view(fidelity):
    scale, _, _ = fidelity.parse_args(["--image-size", "128", "--slices-per-patient", "2", "--max-steps", "20",
                                    "--base-features", "8", "--patch-size", "64", "--batch-size", "8"])
    text = scale.describe()
    assert text.startswith("REDUCED scale: 128^2 (3 mm pixels)")
    assert "2 slices per patient" in text and "beta_r 0.5" in text and "20 steps" in text
    assert "UNet-8" in text and "batch 8" in text
    geom = fidelity.scaled_geometry(scale)
    assert geom.image_size * geom.pixel_size_mm == pytest.approx(384.0) and geom.n_views == 2304


def test_bad_scale_is_rejected(fidelity):
    with pytest.raises(SystemExit):
        fidelity.parse_args(["--image-size", "128", "--patch-size", "192"])
    with pytest.raises(SystemExit):
        fidelity.parse_args(["--views", "2303"])


def test_split_keeps_test_and_validation_patients_out_of_training(fidelity):
    if not fidelity.SERIES.is_dir():
        pytest.skip("../shared/data/ct/tcia_series not present")
    split = fidelity.patient_split(fidelity.parse_args([])[0])
    patients = {k: {f.name.split("__")[1] for f in v} for k, v in split.items()}
    assert patients["test"] == set(fidelity.TEST_PATIENTS) and patients["val"] == set(fidelity.VAL_PATIENTS)
    assert len(patients["train"]) == 8 and not patients["train"] & (patients["test"] | patients["val"])


def test_table_quotes_the_paper_beside_our_numbers(fidelity):
    summary = {m: {"rmse_hu": {"mean": 20.0, "std": 2.0}, "ssim": {"mean": 0.85, "std": 0.03}}
               for m in ("FBP", "Consensus", "Noise2Noise f(x1)")}
    md = fidelity.table(summary)
    assert "| RMSE (HU), here | 20.0 ± 2.0 | 20.0 ± 2.0 | 20.0 ± 2.0 |" in md
    assert "| SSIM (%), paper | 81.5 ± 4.7 | – | 87.1 ± 3.4 |" in md


def test_training_slices_and_evaluation_slices_are_separate(fidelity):
    scale, _, result = fidelity.parse_args(["--image-size", "256", "--slices-per-patient", "1",
                                            "--eval-slices-per-patient", "5", "--beta-r", "0", "--depth", "3",
                                            "--patches-per-slice", "8", "--learning-rate", "3e-4",
                                            "--result", "fidelity_256_s8"])
    text = scale.describe()
    assert "1 slices (validation and test: 5 slices) per patient" in text
    assert "depth 3" in text and "8 patches/slice/epoch" in text and "Adam 0.0003" in text and "beta_r 0" in text
    assert result == "fidelity_256_s8" and text.startswith("REDUCED")


def test_criteria_are_the_issue_13_ratios(fidelity):
    row = lambda rmse, ssim: {"rmse_hu": {"mean": rmse, "std": 0.0}, "ssim": {"mean": ssim, "std": 0.0}}  # noqa: E731
    summary = {"FBP": row(30.0, 0.80), "Noise2Noise": row(20.0, 0.86), "Consensus": row(24.0, 0.85),
               "Consensus mean": row(21.0, 0.87), "Noise2Clean": row(18.0, 0.90)}
    c = fidelity.criteria(summary)
    assert c["Consensus"]["rmse_vs_fbp"] == pytest.approx(0.8)
    assert c["Consensus"]["ssim_gap_closed"] == pytest.approx(0.5)
    assert c["Consensus mean"]["ssim_minus_noise2noise"] == pytest.approx(1.0)
    assert fidelity.criteria({"FBP": row(30.0, 0.8)}) == {}


def test_split_is_a_flag_and_is_described(fidelity):
    assert fidelity.parse_args([])[0].split == "views"
    scale = fidelity.parse_args(["--split", "thinning"])[0]
    assert scale.split == "thinning" and scale.describe().startswith("PAPER scale")
    assert "quarter dose, thinning split" in scale.describe()
    with pytest.raises(SystemExit):
        fidelity.parse_args(["--split", "halves"])


def test_a_prepared_file_of_the_other_split_is_not_reused(fidelity, tmp_path):
    import numpy as np

    from tomoconsensus.ct.io import ImageStack
    from tomoconsensus.ct.pipeline import ct_modality, simulated_source, write_ct

    hu = np.zeros((1, 64, 64), np.float32)
    hu[0, 16:48, 16:48] = 40.0
    stack = ImageStack(hu, np.array([6.0]), ["s0"], ["p0"])
    files = {}
    for split in ("views", "thinning"):
        scale = fidelity.parse_args(["--image-size", "128", "--views", "64", "--patch-size", "64", "--split", split])[0]
        geom = fidelity.scaled_geometry(scale)
        files[split] = (tmp_path / f"{split}.h5", scale, geom)
        source = simulated_source(stack, geom, fidelity.DOSE_FRACTION, scale.seed, "test", counts=split == "thinning")
        write_ct(files[split][0], ct_modality(geom, "cpu", split), source, scale.seed, progress=False)
    for split, (path, scale, geom) in files.items():
        other = files["thinning" if split == "views" else "views"][1]
        assert fidelity.reusable(path, stack, geom, scale, 0, test=False)
        assert not fidelity.reusable(path, stack, geom, other, 0, test=False)
        assert not fidelity.reusable(path, stack, geom, scale, 1, test=False)  # another seed

"""benchmarks/fidelity.py: argument parsing, scale description, split and geometry (nothing is trained)."""

import pytest

from tests.benchmark_module import benchmark_module


@pytest.fixture(scope="module")
def fidelity():
    with benchmark_module("fidelity.py", "fidelity_benchmark") as module:
        yield module


def test_defaults_are_the_paper_protocol(fidelity):
    scale, work = fidelity.parse_args([])
    assert work is None
    assert (scale.image_size, scale.n_views, scale.base_features, scale.patch_size, scale.batch_size, scale.epochs) == \
        (512, 2304, 32, 96, 40, 100)
    assert scale.describe().startswith("PAPER scale: 512^2 (0.75 mm pixels), 2304 views")
    geom = fidelity.scaled_geometry(scale)
    assert geom.name == "ldct-fanbeam" and geom.image_size == 512


def test_reduced_scale_is_described_and_keeps_the_field_of_view(fidelity):
    scale, _ = fidelity.parse_args(["--image-size", "128", "--slices-per-patient", "2", "--max-steps", "20",
                                    "--base-features", "8", "--patch-size", "64", "--batch-size", "8"])
    text = scale.describe()
    assert text.startswith("REDUCED scale: 128^2 (3 mm pixels)")
    assert "2 slices per patient" in text and "20 steps" in text and "UNet-8" in text and "batch 8" in text
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

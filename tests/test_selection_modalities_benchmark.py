"""benchmarks/selection_modalities.py: the PET and spectral configurations and the per-epoch rows (nothing trained)."""

import json

import pytest

from tests.benchmark_module import benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("selection_modalities.py", "selection_modalities_benchmark") as module:
        yield module


@pytest.mark.parametrize("modality", ["pet", "spectral"])
def test_the_smaller_training_set_keeps_the_demos_steps_per_epoch(bench, modality):
    demo = bench.protocol_for(modality, bench.MODALITIES[modality][0][0], few=False)
    few = bench.protocol_for(modality, bench.MODALITIES[modality][0][0], few=True)
    assert few.data.train_slices_per_patient < demo.data.train_slices_per_patient
    assert (few.data.train_slices_per_patient * few.training.patches_per_slice
            == demo.data.train_slices_per_patient * demo.training.patches_per_slice)


def test_spectral_split_is_set_and_pet_has_none(bench):
    assert bench.protocol_for("spectral", "thinning", few=False).data.split == "thinning"
    assert bench.protocol_for("spectral", "views", few=False).data.split == "views"
    assert bench.MODALITIES["pet"][0] == ("thinning",)


def test_rows_take_each_splits_criteria_and_the_demo_splits_clean_error(bench, tmp_path):
    rows = []
    for step, (own, other, clean_own, clean_other) in enumerate([(3.0, 5.0, 12.0, 11.0), (2.0, 6.0, 10.0, 9.0)]):
        rows += [{"split": "val", "step": step, "epoch": step + 1.0, "val_consensus": own,
                  "val_output_on_halves": own + 1, "val_rmse_hu": clean_own, "val_ssim": 0.8},
                 {"split": "monitor:views", "step": step, "epoch": step + 1.0, "val_consensus": other,
                  "val_output_on_halves": other + 1, "val_rmse_hu": clean_other, "val_ssim": 0.9}]
    (tmp_path / "log.jsonl").write_text("\n".join(map(json.dumps, rows)))
    out = bench.epoch_rows(tmp_path, "consensus", ("views", "thinning"), own="thinning")
    assert [r["criterion_loss_thinning"] for r in out] == [3.0, 2.0]
    assert [r["criterion_loss_views"] for r in out] == [5.0, 6.0]
    assert [r["criterion_output_views"] for r in out] == [6.0, 7.0]
    assert [r["rmse_hu"] for r in out] == [11.0, 9.0] and out[0]["ssim"] == pytest.approx(90.0)


def test_runs_keep_the_training_values_of_the_records_after_the_demos_changed(bench):
    for modality, epochs in (("pet", 12), ("spectral", 8)):
        training = bench.protocol_for(modality, bench.MODALITIES[modality][0][0], few=False).training
        assert (training.patch_size, training.epochs, training.patches_per_slice) == (64, epochs, 4)

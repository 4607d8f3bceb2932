"""Prepared data read on demand and several prepared files used as one dataset."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tomoconsensus.cli import main
from tomoconsensus.data import lazy
from tomoconsensus.data.lazy import LazyPrepared, SliceCache, choose_in_memory
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.data.sets import check_disjoint_patients, check_same_kind, read_prepared_many
from tomoconsensus.errors import InputError
from tomoconsensus.learn.checkpoints import load_checkpoint
from tomoconsensus.learn.loop import train

from tests.conftest import tiny_config


def write_subset(source: Path, out: Path, indices, patient: str, attrs: dict | None = None) -> Path:
    """Slices ``indices`` of a prepared file as a new prepared file (chunks of one slice) of patient ``patient``."""
    with h5py.File(source, "r") as src, h5py.File(out, "w") as dst:
        dst.attrs.update(src.attrs)
        dst.attrs.update(attrs or {})
        idx = list(indices)
        for key in ("x1", "x2", "x_est", "reference"):
            data = src[key][idx]
            dst.create_dataset(key, data=data, chunks=(1,) + data.shape[1:], compression="gzip")
        ids = [f"{patient}_{i}" for i in idx]
        dst.create_dataset("slice_id", data=ids, dtype=h5py.string_dtype("utf-8"))
        dst.create_dataset("patient_id", data=[patient] * len(idx), dtype=h5py.string_dtype("utf-8"))
    return out


@pytest.fixture(scope="module")
def two_patients(prepared_ct, tmp_path_factory):
    """prepared_ct's 4 slices as two files of two slices each (patients A and B) in one folder."""
    folder = tmp_path_factory.mktemp("patients")
    write_subset(prepared_ct, folder / "a.h5", [0, 1], "A")
    write_subset(prepared_ct, folder / "b.h5", [2, 3], "B")
    return folder


def _train_log(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines()]


def _weights(run: Path, name: str = "model.pt") -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v for n, sd in load_checkpoint(run / name)["models"].items() for k, v in sd.items()}


def test_lazy_training_draws_the_in_memory_batches_bit_for_bit(prepared_ct, tmp_path):
    """Losses of every step and the final weights equal; a cache of 2 batches' slices (4 of 4 here: the minimum)
    and a cache of one slice's worth of MB both give the same numbers."""
    config = tiny_config(method="consensus", epochs=3)
    train(config, prepared_ct, tmp_path / "memory", progress=False, data_in_memory="yes")
    train(config, prepared_ct, tmp_path / "lazy", progress=False, data_in_memory="no", cache_mb=0.01)
    memory, lazy_log = _train_log(tmp_path / "memory"), _train_log(tmp_path / "lazy")
    assert len(memory) == 12 and [ln["total"] for ln in memory] == [ln["total"] for ln in lazy_log]
    a, b = _weights(tmp_path / "memory"), _weights(tmp_path / "lazy")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_lazy_resume_is_exact(prepared_ct, tmp_path):
    config = tiny_config(method="noise2noise", epochs=3)
    train(config, prepared_ct, tmp_path / "straight", progress=False, data_in_memory="yes")
    train(config, prepared_ct, tmp_path / "resumed", stop_after_steps=5, progress=False, data_in_memory="no")
    train(config, prepared_ct, tmp_path / "resumed", resume=True, progress=False, data_in_memory="no")
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_slice_cache_is_bounded_and_reads_the_stored_values(prepared_ct):
    data, memory = LazyPrepared(prepared_ct), read_prepared(prepared_ct)
    cache = SliceCache(data, cache_mb=2 * 4 * 128 * 128 * 4 / 1e6)  # two slices of 4 arrays of 128^2 float32
    assert cache.capacity == 2
    got = cache.get([3, 0, 3, 1])
    assert len(cache) == 2 and cache.reads == 3  # 3 read once, then hit; 0 evicted by 1
    np.testing.assert_array_equal(got[0]["x1"], memory.x1[3])
    np.testing.assert_array_equal(got[3]["reference"], memory.reference[1])
    np.testing.assert_array_equal(data.x_est[1:3], memory.x_est[1:3])  # validation reads ranges directly


def test_auto_loads_only_what_fits_a_quarter_of_the_available_memory(prepared_ct, monkeypatch):
    need = 4 * 4 * 128 * 128 * 4  # 4 slices x (x1, x2, x_est, reference) x 128^2 float32
    assert lazy.data_bytes(prepared_ct) == need
    monkeypatch.setattr(lazy, "available_memory_bytes", lambda *a: 4 * need)
    assert choose_in_memory("auto", [prepared_ct, None]) is True
    monkeypatch.setattr(lazy, "available_memory_bytes", lambda *a: 4 * need - 1)
    assert choose_in_memory("auto", [prepared_ct, None]) is False
    assert choose_in_memory("yes", [prepared_ct]) is True and choose_in_memory("no", [prepared_ct]) is False


def test_a_folder_of_patients_trains_like_the_single_file(prepared_ct, two_patients, tmp_path):
    config = tiny_config(method="consensus", max_steps=4)
    train(config, prepared_ct, tmp_path / "one", progress=False, data_in_memory="yes")
    train(config, two_patients, tmp_path / "folder", progress=False, data_in_memory="no")
    train(config, sorted(two_patients.glob("*.h5")), tmp_path / "files", progress=False, data_in_memory="yes")
    totals = [[ln["total"] for ln in _train_log(tmp_path / name)] for name in ("one", "folder", "files")]
    assert len(totals[0]) == 4 and totals[0] == totals[1] == totals[2]
    data = read_prepared_many(two_patients)
    assert data.patient_ids == ["A", "A", "B", "B"] and data.slice_ids == ["A_0", "A_1", "B_2", "B_3"]
    np.testing.assert_array_equal(data.x1, read_prepared(prepared_ct).x1)


def test_files_of_another_dose_geometry_or_shape_are_refused(prepared_ct, tmp_path):
    a = write_subset(prepared_ct, tmp_path / "a.h5", [0, 1], "A", {"dose_fraction": 0.25})
    b = write_subset(prepared_ct, tmp_path / "b.h5", [2, 3], "B", {"dose_fraction": 0.5})
    with pytest.raises(InputError, match=r"b\.h5: field 'dose_fraction': expected 0\.25 like .*a\.h5.*got 0\.5"):
        check_same_kind([a, b])
    c = write_subset(prepared_ct, tmp_path / "c.h5", [2], "C", {"dose_fraction": 0.25, "modality": "mr"})
    with pytest.raises(InputError, match=r"c\.h5: field 'modality'"):
        read_prepared_many([a, c])
    with h5py.File(tmp_path / "d.h5", "w") as f:  # a file without the attribute the others have
        with h5py.File(a, "r") as src:
            for k, v in src.attrs.items():
                if k != "geometry_toml":
                    f.attrs[k] = v
            for key in src:
                src.copy(key, f)
    with pytest.raises(InputError, match=r"d\.h5: field 'geometry_toml'.*got 'missing'"):
        LazyPrepared([a, tmp_path / "d.h5"])


def test_validation_patients_must_differ_from_the_training_patients(prepared_ct, two_patients, tmp_path, capsys):
    other = write_subset(prepared_ct, tmp_path / "val_a.h5", [1], "A")
    with pytest.raises(InputError, match=r"val_a\.h5: field 'patient_id'.*1 shared, e\.g\. 'A' also in .*a\.h5"):
        check_disjoint_patients(two_patients, other)
    check_disjoint_patients(two_patients / "a.h5", two_patients / "b.h5")  # A vs B: accepted
    code = main(["train", "--data", str(two_patients), "--val", str(other), "--out", str(tmp_path / "run"),
                 "--max-steps", "1", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "patient_id" in err
    assert not (tmp_path / "run").exists()


def test_denoise_and_evaluate_take_a_folder(prepared_ct, two_patients, tmp_path):
    from tomoconsensus.data.denoised import read_denoised

    train(tiny_config(method="noise2noise", max_steps=2), two_patients, tmp_path / "run", progress=False)
    assert main(["denoise", "--run", str(tmp_path / "run"), "--data", str(two_patients), "--out",
                 str(tmp_path / "folder.h5"), "--device", "cpu"]) == 0
    assert main(["denoise", "--run", str(tmp_path / "run"), "--data", str(prepared_ct), "--out",
                 str(tmp_path / "file.h5"), "--device", "cpu"]) == 0
    folder, ids, _ = read_denoised(tmp_path / "folder.h5")
    np.testing.assert_allclose(folder, read_denoised(tmp_path / "file.h5")[0], rtol=0, atol=1e-6)
    assert ids == ["A_0", "A_1", "B_2", "B_3"]
    assert main(["evaluate", "--data", str(two_patients / "a.h5"), str(two_patients / "b.h5"), "--results",
                 f"n2n={tmp_path / 'folder.h5'}", "--out", str(tmp_path / "report")]) == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert "n2n" in json.dumps(metrics)


def test_lazily_read_files_are_checked_like_loaded_ones(prepared_ct, tmp_path, capsys):
    grouped = write_subset(prepared_ct, tmp_path / "grouped.h5", [0, 1], "G")
    with h5py.File(grouped, "a") as f:
        del f["x2"]
        f.create_group("x2")
    code = main(["train", "--data", str(grouped), "--data-in-memory", "no", "--out", str(tmp_path / "run"),
                 "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "grouped.h5: field 'x2'" in err
    bad = write_subset(prepared_ct, tmp_path / "nan.h5", [0, 1], "N")
    with h5py.File(bad, "a") as f:
        f["x1"][1, 0, 5, 5] = np.nan
    data = LazyPrepared(bad)
    np.testing.assert_array_equal(data.x1[0], read_prepared(prepared_ct).x1[0])
    with pytest.raises(InputError, match=r"nan\.h5: field 'x1'.*1 non-finite"):
        data.x1[1]


def test_distill_on_a_folder_writes_one_teacher_copy_per_file(two_patients, tmp_path):
    from tomoconsensus.distillation import distill

    train(tiny_config(method="noise2noise", max_steps=2), two_patients / "a.h5", tmp_path / "teacher", progress=False)
    distill(tiny_config(max_steps=2), tmp_path / "teacher", two_patients, tmp_path / "g", progress=False,
            warm_start=False, data_in_memory="no")
    copies = sorted((tmp_path / "g" / "teacher_train").glob("*.h5"))
    assert [p.name for p in copies] == ["00000_a.h5", "00001_b.h5"]
    copy = read_prepared(copies[1])
    assert copy.patient_ids == ["B", "B"] and copy.teacher.shape == (2, 1, 128, 128)
    recorded = load_checkpoint(tmp_path / "g" / "model.pt")["data"]["train"]
    assert recorded == str((tmp_path / "g" / "teacher_train").resolve())

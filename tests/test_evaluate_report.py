import csv
import json

import h5py
import numpy as np
import pytest

from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.errors import InputError
from tomoconsensus.evaluation import evaluate, uniform_roi
from tomoconsensus.report import write_report


def _fake_denoised(path, data, images):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "tomoconsensus.denoised"
        f["denoised"] = images.astype(np.float32)
        f.create_dataset("slice_id", data=data.slice_ids, dtype=h5py.string_dtype())


def test_report_files_exist_and_parse(prepared_ct, tmp_path):
    data = read_prepared(prepared_ct)
    _fake_denoised(tmp_path / "perfect.h5", data, data.reference)
    _fake_denoised(tmp_path / "offset.h5", data, data.reference + 0.010)  # +10 HU
    ev = evaluate(prepared_ct, {"Perfect": tmp_path / "perfect.h5", "Offset": tmp_path / "offset.h5"})
    files = write_report(ev, tmp_path / "report")
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    methods = metrics["methods"]
    assert list(methods) == ["FBP", "Perfect", "Offset"]
    assert methods["Perfect"]["rmse_hu"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert methods["Perfect"]["ssim"]["mean"] == pytest.approx(1.0)
    assert methods["Offset"]["rmse_hu"]["mean"] == pytest.approx(10.0, rel=1e-3)
    assert len(methods["FBP"]["rmse_hu"]["per_slice"]) == len(data)
    table = (tmp_path / "report" / "metrics.md").read_text()
    assert table.splitlines()[0] == "| Index | FBP | Perfect | Offset |"
    assert "| RMSE (HU) |" in table and "0.0 ± 0.0" in table
    rows = list(csv.DictReader(open(tmp_path / "report" / "per_slice.csv")))
    assert len(rows) == 3 * len(data) and {r["method"] for r in rows} == {"FBP", "Perfect", "Offset"}
    png = (tmp_path / "report" / "comparison.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert set(files) >= {"metrics.json", "metrics.md", "per_slice.csv", "comparison.png"}


def test_roi_noise_measure_sees_smoothing(prepared_ct, tmp_path):
    data = read_prepared(prepared_ct)
    ev = evaluate(prepared_ct)
    r, c, s = ev.roi[0]
    roi = data.reference[0, 0, r:r + s, c:c + s] * 1000
    assert -100 <= roi.mean() <= 100  # a soft-tissue region
    # FBP keeps its noise: ROI std well above the (noiseless) reference's
    assert ev.summary()["FBP"]["roi_std"]["mean"] > 2 * np.mean(ev.reference_roi_std)


def test_uniform_roi_finds_the_flat_region():
    rng = np.random.default_rng(0)
    image = rng.normal(0, 50, (64, 64))
    image[40:56, 8:24] = 20.0
    r, c, s = uniform_roi(image, 8, (-100, 100))
    assert 40 <= r <= 48 and 8 <= c <= 16 and s == 8


def test_evaluate_needs_reference_and_matching_slices(prepared_ct, tmp_path):
    data = read_prepared(prepared_ct)
    _fake_denoised(tmp_path / "wrong.h5", data.select([1, 0, 2, 3]), data.reference)
    with pytest.raises(InputError, match="slice_id"):
        evaluate(prepared_ct, {"X": tmp_path / "wrong.h5"})

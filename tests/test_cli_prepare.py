import h5py
import numpy as np

from tomoconsensus.cli import main
from tomoconsensus.data.prepared import read_prepared

from tests.conftest import DATA


def test_prepare_ct_from_dicom_with_tv(tmp_path, capsys):
    out = tmp_path / "p.h5"
    code = main(["prepare", "ct", "--images", str(DATA / "ct" / "dicom"), "--geometry", "demo-fanbeam",
                 "--dose-fraction", "0.25", "--seed", "0", "--out", str(out), "--tv", "--tv-iter", "5",
                 "--max-slices", "1"])
    assert code == 0
    data = read_prepared(out)
    assert len(data) == 1 and data.baselines["tv"].shape == (1, 1, 128, 128)
    assert "1 slices" in capsys.readouterr().out


def test_prepare_ct_from_measured_sinograms(tmp_path):
    out = tmp_path / "htc.h5"
    assert main(["prepare", "ct", "--sinograms", str(DATA / "ct" / "htc2022_ta.h5"), "--geometry",
                 "htc2022-fanflat", "--out", str(out)]) == 0
    data = read_prepared(out)
    assert data.reference is None and data.attrs["source_kind"] == "measured sinograms"
    assert data.slice_ids == ["htc2022_ta"]


def test_bad_input_exits_2_with_a_named_error_and_no_output(tmp_path, capsys):
    sino = tmp_path / "wrong.h5"
    with h5py.File(sino, "w") as f:
        f["sinograms"] = np.zeros((1, 100, 184), np.float32)
    out = tmp_path / "never.h5"
    assert main(["prepare", "ct", "--sinograms", str(sino), "--geometry", "demo-fanbeam", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "wrong.h5" in err and "sinograms" in err and "360" in err
    assert not out.exists()
    assert main(["prepare", "ct", "--images", str(tmp_path), "--geometry", "nope", "--out", str(out)]) == 2
    assert "geometry" in capsys.readouterr().err

import json

import h5py
import numpy as np
import pytest

from tomoconsensus.cli import main
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.errors import InputError
from tomoconsensus.modality import split_and_reconstruct
from tomoconsensus.mr.io import KSpaceVolume, read_kspace, read_kspace_file
from tomoconsensus.mr.modality import MRModality
from tomoconsensus.mr.presentation import mr_metrics
from tomoconsensus.mr.sources import undersampled_slices

from tests.conftest import DATA, SHARED

TWIX = DATA / "mr" / "twix_gre_phantom_2ch.h5"
BRAIN = SHARED / "mr" / "auto_espirit_brain8ch" / "brain_clean_8ch.h5"


def test_real_twix_kspace_reads_with_centred_dc():
    (volume,) = read_kspace(TWIX)
    assert volume.kspace.shape == (1, 2, 160, 160) and volume.kspace.dtype == np.complex64
    peak = np.unravel_index(np.abs(volume.kspace[0, 0]).argmax(), (160, 160))
    assert peak == (80, 80)


def _h5(tmp_path, name, data):
    path = tmp_path / name
    with h5py.File(path, "w") as f:
        f["kspace"] = data
    return path


def test_bad_kspace_is_named(tmp_path):
    with pytest.raises(InputError, match="real.h5.*complex"):
        read_kspace_file(_h5(tmp_path, "real.h5", np.ones((2, 8, 8))))
    with pytest.raises(InputError, match="nocoil.h5.*coil axis"):
        read_kspace_file(_h5(tmp_path, "nocoil.h5", np.ones((8, 8), np.complex64)))
    bad = np.ones((2, 8, 8), np.complex64)
    bad[0, 1, 1] = np.nan
    with pytest.raises(InputError, match="nan.h5.*finite"):
        read_kspace_file(_h5(tmp_path, "nan.h5", bad))
    np.savez(tmp_path / "k.npz", other=np.ones(3))
    with pytest.raises(InputError, match="k.npz.*kspace"):
        read_kspace_file(tmp_path / "k.npz")


def test_nyu_mat_layout_is_transposed_to_coils_ky_kx(tmp_path):
    import scipy.io
    raw = (np.arange(6 * 5 * 3) + 1j).reshape(6, 5, 3).astype(np.complex64)  # (readout, phase, coils)
    scipy.io.savemat(tmp_path / "rawdata1.mat", {"rawdata": raw})
    volume = read_kspace_file(tmp_path / "rawdata1.mat")
    assert volume.kspace.shape == (1, 3, 5, 6)
    assert volume.kspace[0, 2, 4, 5] == raw[5, 4, 2]


def test_prepare_mr_cli_on_real_data(tmp_path, capsys):
    out = tmp_path / "mr.h5"
    assert main(["prepare", "mr", "--kspace", str(TWIX), "--center-lines", "24", "--out", str(out)]) == 0
    data = read_prepared(out)
    assert data.x1.shape == (1, 2, 160, 160) and data.attrs["modality"] == "mr"
    scales = json.loads(data.attrs["scale_factors"])
    assert list(scales) == ["twix_gre_phantom_2ch"] and scales["twix_gre_phantom_2ch"] > 0
    assert np.abs(data.reference).max() <= 1.0 + 1e-6  # scaled into [-1, 1]
    assert "zero_filled" in data.baselines
    assert main(["prepare", "mr", "--kspace", str(tmp_path / "missing.h5"), "--out", str(out)]) == 2


def test_prepare_mr_calibration_width_and_virtual_coils(tmp_path, capsys):
    out = tmp_path / "mr.h5"
    assert main(["prepare", "mr", "--kspace", str(TWIX), "--center-lines", "24", "--calib-width", "16",
                 "--virtual-coils", "1", "--keep-measurement", "--out", str(out)]) == 0
    with h5py.File(out) as f:
        assert f.attrs["calib_width"] == 16 and f.attrs["virtual_coils"] == 1 and f.attrs["coils"] == 2
        assert f["measurement/kspace"].shape[1] == 1
    capsys.readouterr()
    assert main(["prepare", "mr", "--kspace", str(TWIX), "--center-lines", "24", "--calib-width", "30",
                 "--out", str(tmp_path / "bad.h5")]) == 2
    assert "--calib-width" in capsys.readouterr().err
    assert main(["prepare", "mr", "--kspace", str(TWIX), "--center-lines", "24", "--virtual-coils", "3",
                 "--out", str(tmp_path / "bad.h5")]) == 2
    err = capsys.readouterr().err
    assert "--virtual-coils" in err and "at most the 2 coils" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad.h5").exists()


@pytest.mark.skipif(not BRAIN.exists(), reason="needs ../shared/data (non-commercial 8-channel brain)")
def test_sense_beats_zero_filling_on_real_8_channel_brain():
    """Real in-vivo data (measured: SENSE 26 vs zero-filling 50 in 1e-3 units; halves' rho -0.20)."""
    with h5py.File(BRAIN) as f:
        kspace = f["kspace"][()][None].astype(np.complex64)
    sl = next(undersampled_slices([KSpaceVolume(kspace, "brain", BRAIN)], 4.0, 24, 0))
    mod = MRModality(4.0, 24)
    images = split_and_reconstruct(mod, sl.measurement, None)
    sense_rmse = mr_metrics(images.x_est, sl.reference)["rmse_1e-3"]
    zf_rmse = mr_metrics(mod.zero_filled(sl.measurement), sl.reference)["rmse_1e-3"]
    assert sense_rmse < 0.7 * zf_rmse
    e1, e2 = images.x1 - sl.reference, images.x2 - sl.reference
    assert abs(np.sum(e1 * e2) / np.sqrt(np.sum(e1**2) * np.sum(e2**2))) < 0.3


def test_trainer_denoise_and_evaluate_work_unchanged_on_mr(tmp_path):
    from tomoconsensus.denoising import denoise
    from tomoconsensus.evaluation import evaluate
    from tomoconsensus.learn.loop import train

    from tests.conftest import tiny_config

    data = tmp_path / "mr.h5"
    assert main(["prepare", "mr", "--kspace", str(TWIX), "--center-lines", "24", "--out", str(data)]) == 0
    train(tiny_config(method="consensus", channels=2, patches_per_slice=8), data, tmp_path / "run", progress=False)
    denoise(tmp_path / "run", data, tmp_path / "d.h5", device="cpu", progress=False)
    summary = evaluate(data, {"Consensus": tmp_path / "d.h5"}).summary()
    assert set(summary) == {"SENSE", "Zero-filling", "Consensus"}
    assert all(np.isfinite(summary[m]["rmse_1e-3"]["mean"]) for m in summary)


def test_prepare_mr_centre_split_on_real_data(tmp_path):
    """mr_modality(centre_split=True) (library only; not for training: docs/mr-simulation.md): the same 4x mask
    and outer lines as without it (same seed), the central lines split between the halves, weight 2 each;
    the file says which split it holds."""
    from tomoconsensus.mr.pipeline import mr_modality, write_mr

    files = {}
    for name, centre_split in (("shared", False), ("split", True)):
        files[name] = tmp_path / f"{name}.h5"
        write_mr(files[name], mr_modality(4.0, 24, device="cpu", centre_split=centre_split), read_kspace(TWIX), 0,
                 TWIX, keep_measurement=True, progress=False)
    with h5py.File(files["shared"]) as a, h5py.File(files["split"]) as b:
        m, c = a["measurement"], b["measurement"]
        assert np.array_equal(m["mask"][:], c["mask"][:])
        h1, h2 = c["half1"][0].astype(bool), c["half2"][0].astype(bool)
        centre = m["half1"][0].astype(bool) & m["half2"][0].astype(bool)
        assert centre.sum() == 24 and not np.any(h1 & h2) and (h1 & centre).sum() == 12
        assert np.array_equal(h1 & ~centre, m["half1"][0].astype(bool) & ~centre)
        assert np.all(c["weight_half1"][0][h1 & centre] == 2.0) and np.all(m["weight_half1"][0][centre] == 1.0)
        assert np.array_equal(a["x_est"][:], b["x_est"][:])  # SENSE on the same 4x data
        assert str(b.attrs["split"]).startswith("centre lines split at random too")
        assert str(a.attrs["split"]).startswith("centre lines in both halves")
    with pytest.raises(SystemExit) as exit_:  # the command does not offer it
        main(["prepare", "mr", "--kspace", str(TWIX), "--centre-split", "--out", str(tmp_path / "x.h5")])
    assert exit_.value.code == 2 and not (tmp_path / "x.h5").exists()

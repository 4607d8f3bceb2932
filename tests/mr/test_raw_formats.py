"""Scanner raw formats (ISMRMRD, Siemens twix): round trips through files written with the formats' own
libraries, the shipped Siemens phantom against twixtools' own reconstruction, and ``prepare mr`` on them."""

import json

import h5py
import numpy as np
import pytest

from tomoconsensus.cli import main
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.errors import InputError
from tomoconsensus.mr.io import read_kspace, read_kspace_file
from tomoconsensus.mr.masks import center_lines_mask
from tomoconsensus.mr.raw import remove_readout_oversampling, whitening_matrix
from tomoconsensus.mr.sources import undersampled_slices

from tests.conftest import DATA
from tests.mr.raw_writers import (
    TWIX_TEMPLATE,
    exact_noise,
    known_kspace,
    mixing,
    oversample_readout,
    write_ismrmrd,
    write_twix,
)


def _undersampled(n_slices: int, ny: int, centre: int, outer: int, rng) -> np.ndarray:
    """(slices, ny) acquired lines: the central ``centre`` plus ``outer`` random others per slice."""
    acquired = np.zeros((n_slices, ny), bool)
    for s in range(n_slices):
        acquired[s, center_lines_mask(ny, centre)] = True
        acquired[s, rng.choice(np.flatnonzero(~acquired[s]), outer, replace=False)] = True
    return acquired


def test_readout_oversampling_removal_matches_twixtools_and_is_exact_for_the_prescribed_fov():
    from twixtools.recon_helpers import remove_oversampling

    rng = np.random.default_rng(1)
    lines = (rng.standard_normal((3, 5, 64)) + 1j * rng.standard_normal((3, 5, 64))).astype(np.complex64)
    ours = remove_readout_oversampling(lines, 32)
    theirs, _ = remove_oversampling(lines)
    assert ours.shape == (3, 5, 32)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * np.abs(theirs).max())
    kspace = known_kspace(2, 8, 24, rng)
    np.testing.assert_allclose(remove_readout_oversampling(oversample_readout(kspace), 24), kspace, atol=1e-5)


def test_whitening_makes_coil_noise_independent_with_unit_variance_at_the_imaging_bandwidth():
    rng = np.random.default_rng(2)
    low = mixing(4, rng)
    noise = exact_noise(low, 512, rng, dwell_ratio=2.0)  # noise scan at twice the dwell time: half the variance
    w = whitening_matrix(noise, dwell_ratio=2.0)
    np.testing.assert_allclose(w @ (low @ low.conj().T) @ w.conj().T, np.eye(4), atol=1e-4)
    # statistically: fresh imaging noise L e (e white, unit variance) whitens to unit variance per coil
    e = (rng.standard_normal((4, 200_000)) + 1j * rng.standard_normal((4, 200_000))) / np.sqrt(2)
    cov = np.cov(w @ low @ e)
    np.testing.assert_allclose(cov, np.eye(4), atol=0.02)
    with pytest.raises(InputError, match="noise scan.*samples"):
        whitening_matrix(noise[:, :3])


def test_ismrmrd_round_trip_gives_the_same_kspace_and_mask(tmp_path):
    rng = np.random.default_rng(3)
    kspace = np.stack([known_kspace(4, 40, 32, rng) for _ in range(2)])
    acquired = _undersampled(2, 40, 12, 8, rng)
    low = mixing(4, rng)
    path = tmp_path / "scan.h5"
    write_ismrmrd(path, kspace, acquired, low, exact_noise(low, 256, rng, dwell_ratio=2.0), noise_dwell_us=10.0,
                  dwell_us=5.0)
    (volume,) = read_kspace(path)
    assert volume.kspace.shape == (2, 4, 40, 32)
    np.testing.assert_array_equal(volume.acquired, acquired)
    np.testing.assert_allclose(volume.kspace, kspace * acquired[:, None, :, None], rtol=0,
                               atol=1e-5 * np.abs(kspace).max())
    assert volume.notes["prewhitened"] and volume.notes["readout_oversampling"] == 2.0
    assert volume.notes["noise_samples"] == 256 and not volume.fully_sampled


def test_ismrmrd_without_noise_scan_keeps_the_coils_and_skips_navigators(tmp_path):
    import ismrmrd

    rng = np.random.default_rng(4)
    kspace = known_kspace(3, 24, 16, rng)[None]
    acquired = np.ones((1, 24), bool)
    path = tmp_path / "full.h5"
    write_ismrmrd(path, kspace, acquired, np.eye(3), None)
    with ismrmrd.Dataset(str(path), "dataset", mode="a") as dset:  # a navigator on line 0 must not enter
        nav = ismrmrd.Acquisition.from_array(np.full((3, 32), 1e3, np.complex64), center_sample=16)
        nav.setFlag(ismrmrd.ACQ_IS_NAVIGATION_DATA)
        dset.append_acquisition(nav)
    volume = read_kspace_file(path)
    assert volume.fully_sampled and not volume.notes["prewhitened"]
    np.testing.assert_allclose(volume.kspace, kspace, atol=1e-5 * np.abs(kspace).max())


def test_twix_round_trip_gives_the_same_kspace_and_mask(tmp_path):
    rng = np.random.default_rng(5)
    kspace = known_kspace(2, 160, 160, rng)[None]
    acquired = _undersampled(1, 160, 24, 16, rng)
    low = mixing(2, rng)
    path = tmp_path / "meas.dat"
    write_twix(path, kspace, acquired, low, exact_noise(low, 640, rng))
    volume = read_kspace_file(path)
    np.testing.assert_array_equal(volume.acquired, acquired)
    np.testing.assert_allclose(volume.kspace, kspace * acquired[:, None, :, None], rtol=0,
                               atol=1e-5 * np.abs(kspace).max())
    assert volume.notes["format"] == "Siemens twix" and volume.notes["prewhitened"]


def test_shipped_siemens_phantom_matches_twixtools_and_the_independent_extraction():
    import contextlib
    import io

    import twixtools

    volume = read_kspace_file(TWIX_TEMPLATE)
    assert volume.kspace.shape == (1, 2, 160, 160) and volume.fully_sampled
    with contextlib.redirect_stdout(io.StringIO()):
        mapped = twixtools.map_twix(twixtools.read_twix(str(TWIX_TEMPLATE), verbose=False), verbose=False)[-1]
    image = mapped["image"]
    image.flags["remove_os"] = True
    image.flags["squeeze_singletons"] = True
    np.testing.assert_allclose(volume.kspace[0], image[:].transpose(1, 0, 2), rtol=0, atol=1e-6)
    with h5py.File(DATA / "mr" / "twix_gre_phantom_2ch.h5") as f:  # orthonormal FFTs: x sqrt(320 / 160)
        extraction = f["kspace"][()]
    np.testing.assert_allclose(volume.kspace * np.sqrt(2), extraction, atol=1e-4 * np.abs(extraction).max())


def test_prepare_mr_keeps_a_scanners_own_undersampling(tmp_path):
    rng = np.random.default_rng(6)
    kspace = np.stack([known_kspace(4, 64, 48, rng) for _ in range(2)])
    acquired = _undersampled(2, 64, 16, 8, rng)  # 24 of 64 lines: 2.7x
    low = mixing(4, rng)
    path = tmp_path / "prospective.h5"
    write_ismrmrd(path, kspace, acquired, low, exact_noise(low, 128, rng))
    for i, sl in enumerate(undersampled_slices(read_kspace(path), 4.0, 16, seed=0, calib_width=16)):
        design = sl.measurement.design
        np.testing.assert_array_equal(design.mask, acquired[i])
        np.testing.assert_array_equal(design.half1 | design.half2, acquired[i])
        np.testing.assert_array_equal(design.half1 & design.half2, center_lines_mask(64, 16))
        assert sl.reference is None
    out = tmp_path / "prepared.h5"
    assert main(["prepare", "mr", "--kspace", str(path), "--center-lines", "16", "--out", str(out)]) == 0
    data = read_prepared(out)
    assert data.reference is None and data.x1.shape == (2, 2, 64, 48)
    assert data.attrs["undersampling"] == "the scanner's acquired lines"
    assert float(data.attrs["acquired_acceleration"]) == pytest.approx(64 / 24)
    assert json.loads(data.attrs["raw_format"]) == ["ISMRMRD"] and json.loads(data.attrs["prewhitened"]) == [True]


def test_prepare_mr_reads_the_siemens_file(tmp_path):
    out = tmp_path / "gre.h5"
    assert main(["prepare", "mr", "--kspace", str(TWIX_TEMPLATE), "--center-lines", "16", "--out", str(out)]) == 0
    data = read_prepared(out)
    assert data.x1.shape == (1, 2, 160, 160) and data.reference is not None
    assert data.attrs["undersampling"].startswith("retrospective")


def test_bad_raw_files_are_one_line_errors(tmp_path, capsys):
    rng = np.random.default_rng(7)
    kspace = known_kspace(2, 32, 16, rng)[None]
    acquired = _undersampled(1, 32, 6, 6, rng)
    path = tmp_path / "few_centre.h5"
    write_ismrmrd(path, kspace, acquired, np.eye(2), None)
    out = tmp_path / "out.h5"
    assert main(["prepare", "mr", "--kspace", str(path), "--center-lines", "12", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "few_centre.h5" in err and "central lines acquired" in err
    assert not out.exists()
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\x00" * 100)
    assert main(["prepare", "mr", "--kspace", str(junk), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "junk.dat" in err and "twix" in err
    assert not out.exists()

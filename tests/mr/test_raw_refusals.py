"""Scanner raw files the MR path cannot reconstruct are refused in one line (file, field, sequence, what is
supported), exit 2, nothing written: Siemens twix files edited from the shipped real phantom (protocol text and
MDH flags, written with twixtools) and ISMRMRD files written with the ismrmrd package."""

import copy

import numpy as np
import pytest

from tomoconsensus.cli import main
from tomoconsensus.errors import InputError
from tomoconsensus.mr import raw
from tomoconsensus.mr.io import read_kspace_file

from tests.mr.raw_writers import TWIX_TEMPLATE, known_kspace, write_ismrmrd, write_twix_variant

SUPPORTED = "2-D Cartesian single-contrast imaging with monopolar readouts"


def _sequence(name: bytes) -> dict[bytes, bytes]:
    """Rename the protocol's sequence file ``%CustomerSeq%\\gre`` (3 letters, the header's lengths stay)."""
    return {b'tSequenceFileName\t = \t"%CustomerSeq%\\gre"': b'tSequenceFileName\t = \t"%CustomerSeq%\\' + name + b'"'}


def _flag(flag: str, which):
    def edit(mdbs):
        for i, m in enumerate(mdbs):
            if which(i):
                m.add_flag(flag)
        return mdbs
    return edit


def _with_phase_correction(mdbs):
    navigator = copy.deepcopy(mdbs[0])
    navigator.clear_all_flags()
    navigator.add_flag("PHASCOR")
    return [navigator, *mdbs]


_EPI = {b"sFastImaging.lEPIFactor\t = \t1\n": b"sFastImaging.lEPIFactor\t = \t8\n",
        b'<ParamLong."alRegridMode"> \n      {\n        1 1': b'<ParamLong."alRegridMode"> \n      {\n        2 2'}

TWIX_CASES = {  # name: (sequence, protocol edits, MDB edits, field, words of the message)
    "radial": (b"rad", {b"sKSpace.ucTrajectory\t = \t1": b"sKSpace.ucTrajectory\t = \t2"}, None,
               "sKSpace.ucTrajectory", ["radial", "got '2 "]),
    "spiral": (b"spi", {b"sKSpace.ucTrajectory\t = \t1": b"sKSpace.ucTrajectory\t = \t4"}, None,
               "sKSpace.ucTrajectory", ["spiral"]),
    "blade": (b"tse", {b"sKSpace.ucTrajectory\t = \t1": b"sKSpace.ucTrajectory\t = \t8"}, None,
              "sKSpace.ucTrajectory", ["BLADE"]),
    "3-D": (b"fl3", {b"sKSpace.ucDimension\t = \t2": b"sKSpace.ucDimension\t = \t4"}, None,
            "sKSpace.ucDimension", ["3-D encoded (16 partitions)"]),
    "3-D (hex)": (b"fl3", {b"sKSpace.ucDimension\t = \t2": b"sKSpace.ucDimension\t= 0x4"}, None,
                  "sKSpace.ucDimension", ["3-D encoded", "got '4 "]),
    # an EPI as scanners write it: EPI factor, ramp sampling, phase-correction navigators, bipolar lines
    "EPI": (b"epi", _EPI, lambda m: _flag("REFLECT", lambda i: i % 2)(_with_phase_correction(m)),
            "sFastImaging.lEPIFactor", ["EPI", "got '8 "]),
    "ramp sampling": (b"rmp", {k: v for k, v in _EPI.items() if b"Regrid" in k}, None, "alRegridMode",
                      ["ramp sampled", "trapezoidal", "[2]"]),
    "phase correction": (b"pcr", {}, _with_phase_correction, "MDH flag PHASCOR", ["1 PHASCOR lines"]),
    "bipolar": (b"bip", {}, _flag("REFLECT", lambda i: i % 2), "MDH flag REFLECT",
                ["80 of 160 imaging lines reflected"]),
}


def _refused(capsys, path, out, field: str, words: list[str]) -> str:
    assert main(["prepare", "mr", "--kspace", str(path), "--center-lines", "16", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert path.name in err and f"field '{field}'" in err, err
    assert all(w in err for w in words), err
    assert not out.exists() and sorted(p.name for p in out.parent.iterdir()) == [path.name]  # nothing written
    return err


@pytest.mark.parametrize("case", list(TWIX_CASES))
def test_twix_sequences_the_mr_path_does_not_handle_are_refused_in_one_line(tmp_path, capsys, case):
    sequence, protocol, edit, field, words = TWIX_CASES[case]
    path = tmp_path / "meas.dat"
    write_twix_variant(path, {**_sequence(sequence), **protocol}, edit)
    err = _refused(capsys, path, tmp_path / "out.h5", field, words)
    assert f"(sequence {sequence.decode()})" in err and SUPPORTED in err


def test_twix_reversed_readouts_are_read_back_in_order():
    """Every line REFLECTed and stored backwards (a monopolar readout in the other direction) gives the
    same k-space as the original file: the reversal is undone, only mixed directions are refused."""
    import tempfile
    from pathlib import Path

    def backwards(mdbs):
        for m in mdbs:
            m.add_flag("REFLECT")
            m.data = np.ascontiguousarray(m.data[:, ::-1])
        return mdbs

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reflected.dat"
        write_twix_variant(path, None, backwards)
        volume = read_kspace_file(path)
    np.testing.assert_array_equal(volume.kspace, read_kspace_file(TWIX_TEMPLATE).kspace)


def test_twix_matrix_beyond_memory_is_refused_before_allocating(tmp_path, monkeypatch):
    """CenterLin 4000 claims 8000 lines: 1 slice x 2 coils x 8000 x 160 samples x 24 bytes = 61,440,000; the
    file's lines 0..159 land on rows l - 4000 + 8000 // 2 = l."""
    def centre(mdbs):
        for m in mdbs:
            m.mdh.CenterLin = 4000
        return mdbs

    path = tmp_path / "meas.dat"
    write_twix_variant(path, None, centre)
    monkeypatch.setattr(raw, "available_memory_bytes", lambda: 61_440_000 - 1)
    with pytest.raises(InputError, match=r"field 'MDH CenterLin'.*2 coils x 8000 lines x 160 readout samples needs "
                                         r"0\.0572 GiB.*got 8000"):
        read_kspace_file(path)
    monkeypatch.setattr(raw, "available_memory_bytes", lambda: 61_440_000)
    volume = read_kspace_file(path)
    assert volume.kspace.shape == (1, 2, 8000, 160)
    np.testing.assert_array_equal(np.flatnonzero(volume.acquired[0]), np.arange(160))


def _ismrmrd(path, noise=None, edit_header=None, edit_line=None, coils=2):
    rng = np.random.default_rng(11)
    kspace = known_kspace(coils, 32, 16, rng)[None]
    write_ismrmrd(path, kspace, np.ones((1, 32), bool), np.eye(coils), noise, edit_header=edit_header,
                  edit_line=edit_line)


def _named(sequence: str, change=None):
    import ismrmrd.xsd as x

    def edit(header):
        header.measurementInformation = x.measurementInformationType(sequenceName=sequence,
                                                                     patientPosition=x.patientPositionType.HFS)
        if change is not None:
            change(header.encoding[0])
    return edit


def _three_d(encoding):
    import ismrmrd.xsd as x

    encoding.encodedSpace.matrixSize.z = 8
    encoding.encodingLimits.kspace_encoding_step_2 = x.limitType(minimum=0, maximum=7, center=4)


def _trajectory(kind):
    def change(encoding):
        encoding.trajectory = kind
    return change


def _reverse_odd(acq, y):
    import ismrmrd

    if y % 2:
        acq.setFlag(ismrmrd.ACQ_IS_REVERSE)


def _append(path, flag=None, trajectory=False, coils=2):
    import ismrmrd

    with ismrmrd.Dataset(str(path), "dataset", mode="a") as dset:
        data = np.ones((coils, 32), np.complex64)
        acq = ismrmrd.Acquisition.from_array(data, np.zeros((32, 2), np.float32) if trajectory else None,
                                             center_sample=16)
        if flag is not None:
            acq.setFlag(getattr(ismrmrd, flag))
        dset.append_acquisition(acq)


def _ismrmrd_cases():
    import ismrmrd.xsd as x

    return {  # name: (header edit, line edit, appended acquisition, field, words)
        "radial": (_named("radial_gre", _trajectory(x.trajectoryType.RADIAL)), None, None, "encoding.trajectory",
                   ["radial", "(sequence radial_gre)"]),
        "spiral": (_named("spiral", _trajectory(x.trajectoryType.SPIRAL)), None, None, "encoding.trajectory",
                   ["spiral"]),
        "EPI": (_named("ep2d_bold", _trajectory(x.trajectoryType.EPI)), _reverse_odd, {"flag":
                "ACQ_IS_PHASECORR_DATA"}, "encoding.trajectory", ["epi", "(sequence ep2d_bold)"]),
        "3-D": (_named("fl3d", _three_d), None, None, "encodedSpace.matrixSize.z", ["3-D encoded", "up to 7"]),
        "phase correction": (_named("gre"), None, {"flag": "ACQ_IS_PHASECORR_DATA"},
                             "acquisition 32 flag ACQ_IS_PHASECORR_DATA", ["phase-correction lines"]),
        "trajectory coordinates": (_named("gre"), None, {"trajectory": True}, "acquisition 32 trajectory_dimensions",
                                   ["non-Cartesian", "got '2 "]),
        "bipolar": (_named("gre"), _reverse_odd, None, "flag ACQ_IS_REVERSE", ["16 of 32 imaging lines reversed"]),
        "noise of other coils": (_named("gre"), None, {"flag": "ACQ_IS_NOISE_MEASUREMENT", "coils": 3},
                                 "noise acquisitions (ACQ_IS_NOISE_MEASUREMENT)", ["coil counts [2, 3]"]),
    }


@pytest.mark.parametrize("case", ["radial", "spiral", "EPI", "3-D", "phase correction", "trajectory coordinates",
                                  "bipolar", "noise of other coils"])
def test_ismrmrd_data_the_mr_path_does_not_handle_are_refused_in_one_line(tmp_path, capsys, case):
    edit_header, edit_line, append, field, words = _ismrmrd_cases()[case]
    path = tmp_path / "scan.h5"
    noise = np.ones((2, 64), np.complex64) if case == "noise of other coils" else None
    _ismrmrd(path, noise, edit_header, edit_line)
    if append is not None:
        _append(path, **append)
    err = _refused(capsys, path, tmp_path / "out.h5", field, words)
    if case not in ("noise of other coils",):
        assert SUPPORTED in err


def test_ismrmrd_noise_scan_with_nan_is_one_line(tmp_path, capsys):
    rng = np.random.default_rng(12)
    noise = (rng.standard_normal((2, 64)) + 1j * rng.standard_normal((2, 64))).astype(np.complex64)
    noise[1, 5] = np.nan
    path = tmp_path / "scan.h5"
    _ismrmrd(path, noise)
    _refused(capsys, path, tmp_path / "out.h5", "noise acquisitions (ACQ_IS_NOISE_MEASUREMENT)",
             ["finite values", "1 non-finite values"])


def test_ismrmrd_header_with_1e8_lines_is_refused_before_allocating(tmp_path, capsys):
    """matrixSize.y = 1e8 with 4 coils and 16 readout pixels: 1e8 x 4 x 16 x 24 bytes = 143 GiB (beyond any
    test machine here: 22 GiB); refused from the estimate, without touching that memory."""
    def lines(encoding):
        encoding.encodedSpace.matrixSize.y = 100_000_000

    path = tmp_path / "scan.h5"
    _ismrmrd(path, None, _named("gre", lines), coils=4)
    if raw.available_memory_bytes() >= 153_600_000_000:
        pytest.skip("this machine has more memory than the header claims")
    _refused(capsys, path, tmp_path / "out.h5", "encodedSpace.matrixSize.y",
             ["fits in memory", "4 coils x 100000000 lines x 16 readout samples needs 143 GiB", "got 100000000"])


def _noise_line(mdb, channels: int, value: complex):
    line = copy.deepcopy(mdb)
    line.clear_all_flags()
    line.add_flag("NOISEADJSCAN")
    line.mdh.UsedChannels = channels
    line.data = np.full((channels, mdb.data.shape[1]), value, np.complex64)
    return line


@pytest.mark.parametrize("case", ["NaN", "channels"])
def test_twix_noise_scan_with_nan_or_other_channels_is_one_line(tmp_path, capsys, case):
    rng = np.random.default_rng(13)

    def noisy(mdbs):
        lines = [_noise_line(mdbs[0], 2, 0) for _ in range(4)]
        for line in lines:
            line.data = (rng.standard_normal(line.data.shape) + 1j * rng.standard_normal(line.data.shape)).astype(
                np.complex64)
        if case == "NaN":
            lines[2].data[1, 7] = np.nan
        else:
            lines.append(_noise_line(mdbs[0], 1, 1.0))
        return lines + mdbs

    path = tmp_path / "meas.dat"
    write_twix_variant(path, None, noisy)
    if case == "NaN":
        _refused(capsys, path, tmp_path / "out.h5", "NOISEADJSCAN data", ["finite values", "1 non-finite values"])
    else:
        _refused(capsys, path, tmp_path / "out.h5", "NOISEADJSCAN MDBs", ["the same channels", "got [1, 2]"])

"""Siemens mMR list-mode (PETLINK 32-bit): bit decoding, michelogram and arc mapping by hand, refusals,
and the real STIR test-pack file (skipped where ../shared is absent) decoded independently here."""

import math

import h5py
import numpy as np
import pytest

from tomoconsensus.cli import main
from tomoconsensus.pet.interfile import read_listmode_header
from tomoconsensus.pet.petlink import arc_correction, decode, frame_halves, histogram_listmode, michelogram

from tests.conftest import SHARED

MMR = SHARED / "pet" / "stir_mmr_listmode"
HEADER = MMR / "PET_ACQ_small.l.hdr"
PROMPT, TIME = 1 << 30, 1 << 31


def address(z: int, view: int, tang: int) -> int:
    """The PETLINK bin address of sinogram z, view, tangential bin (344 bins x 252 views)."""
    return (z * 252 + view) * 344 + tang


def write_listmode(folder, words, system="2008", trailing=b"", extra=""):
    """A header + .l pair in ``folder`` (words little-endian uint32, then ``trailing`` bytes)."""
    data = folder / "acq.l"
    data.write_bytes(np.asarray(words, "<u4").tobytes() + trailing)
    header = folder / "acq.l.hdr"
    header.write_text(f"!INTERFILE:=\n!originating system:={system}\nname of data file := acq.l\n"
                      "isotope name:=F-18\nisotope gamma halflife (sec):=6586.2\nimage duration (sec):=900\n"
                      f"%total listmode word counts:=999\n%number of projections:=344\n{extra}")
    return header


def test_word_decoding_by_hand():
    words = [PROMPT | 12345, 7, TIME | 5, 0xBC000000, 0xFFFF0000, TIME | (1 << 29) - 1]
    d = decode(np.array(words, np.uint32))
    assert d["event"].tolist() == [True, True, False, False, False, False]
    assert d["prompt"].tolist() == [True, False] and d["address"].tolist() == [12345, 7]
    assert d["time"].tolist() == [False, False, True, False, False, True]
    assert d["time_ms"].tolist() == [5, (1 << 29) - 1]
    assert d["other"].tolist() == [False, False, False, True, True, False]  # dead-time/singles and control tags


def test_michelogram_order_by_hand():
    r1, r2 = michelogram()
    assert len(r1) == 4084  # 64 + 2 * sum(64 - d, d = 1..60)
    # segment 0 (z 0..63), then d = r2 - r1 = -1 (z 64..126), +1 (127..189), ..., +60 (z 4080..4083)
    expected = {0: (0, 0), 63: (63, 63), 64: (1, 0), 126: (63, 62), 127: (0, 1), 189: (62, 63),
                190: (2, 0), 4076: (60, 0), 4079: (63, 3), 4080: (0, 60), 4083: (3, 63)}
    for z, pair in expected.items():
        assert (r1[z], r2[z]) == pair, z
    pairs = set(zip(r1.tolist(), r2.tolist(), strict=True))
    assert len(pairs) == 4084 and all(abs(a - b) <= 60 for a, b in pairs)  # every ring pair exactly once
    assert (r1 + r2).min() == 0 and (r1 + r2).max() == 126


def test_arc_correction_against_the_sine_sampling():
    arc = arc_correction()
    k = np.arange(344) - 172
    s = 335.0 * np.sin(k * math.pi / 504)
    u = (arc.target - (arc.n_out - 1) / 2) * 2.08626
    assert arc.n_out == 283 and arc.target[172] == 141  # s = 0 at the centre of 283 bins
    assert np.abs(s - u).max() <= 2.08626 / 2 + 1e-9  # nearest uniform bin
    assert arc.multiplicative[141] == pytest.approx(335.0 * 2 * math.sin(math.pi / 1008) / 2.08626, rel=1e-12)
    total = 335.0 * (math.sin(171.5 * math.pi / 504) + math.sin(172.5 * math.pi / 504)) / 2.08626
    assert arc.multiplicative.sum() == pytest.approx(total, rel=1e-12)  # the widths add up to the s range
    assert arc.multiplicative[141] == pytest.approx(1.0009, abs=1e-4)  # the numbers docs/pet.md states
    assert 0.48 < arc.multiplicative.min() < 0.49 and 1.92 < arc.multiplicative.max() < 1.93


def test_histogram_of_a_hand_written_stream(tmp_path):
    """Marks from 100 ms; events before the first mark count in its millisecond; 1 ms frames alternate halves."""
    words = [PROMPT | address(0, 3, 172),  # before the first mark: ms 100, plane 0, half 1
             TIME | 100, PROMPT | address(127, 5, 172), address(64, 5, 173),  # rings (0,1) prompt, (1,0) delayed
             0xA0000000, TIME | 101, PROMPT | address(4083, 251, 0),  # rings (3, 63): plane 66; half 2
             TIME | 102, PROMPT | address(64, 5, 172)]  # half 1 again
    header = write_listmode(tmp_path, words, trailing=b"\x01\x02")
    c = histogram_listmode(read_listmode_header(header).data_file, frame_halves(1))
    (p1, p2), (d1, d2) = c.prompts, c.delayed
    assert (c.first_mark_ms, c.last_mark_ms, c.duration_s) == (100, 102, 0.003)
    assert (c.words, c.trailing_bytes, c.other_tags) == (len(words), 2, 1)
    assert p1.shape == (127, 252, 283) and p1.sum() == 3 and p2.sum() == 1 and d1.sum() == 1 and d2.sum() == 0
    assert p1[0, 3, 141] == 1 and p1[1, 5, 141] == 2 and d1[1, 5, 142] == 1
    assert p2[66, 251, 0] == 1  # tang 0: s = -294.3 mm, the first uniform bin


@pytest.mark.parametrize("case, words", [
    ("missing data file", "not found"), ("unknown scanner", "originating system"),
    ("other span", "axial compression"), ("no time marks", "time marks"), ("address", "bin address"),
    ("not a header", "INTERFILE"), ("no prompts", "prompt"),
])
def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys, case, words):
    good = [TIME | 0, PROMPT | address(0, 0, 0), TIME | 1]
    header = {"missing data file": lambda: write_listmode(tmp_path, good),
              "unknown scanner": lambda: write_listmode(tmp_path, good, system="1104"),
              "other span": lambda: write_listmode(tmp_path, good, extra="%axial compression:=11\n"),
              "no time marks": lambda: write_listmode(tmp_path, [PROMPT | 5, 7]),
              "address": lambda: write_listmode(tmp_path, [TIME, PROMPT | address(4084, 0, 0)]),
              "not a header": lambda: write_listmode(tmp_path, good).parent / "acq.l",
              "no prompts": lambda: write_listmode(tmp_path, [TIME, 7, TIME | 1]),
              }[case]()
    if case == "missing data file":
        (tmp_path / "acq.l").unlink()
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["prepare", "pet", "--listmode", str(header), "--image-size", "16", "--pixel-size-mm", "40",
                 "--out", str(tmp_path / "out.h5")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0] and "Traceback" not in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_truncated_stream_stops_at_the_last_whole_word(tmp_path, capsys):
    header = write_listmode(tmp_path, [TIME, PROMPT | address(0, 0, 172), TIME | 1, PROMPT | address(0, 1, 172)],
                            trailing=b"\x00\x00\x40")  # a cut-off fourth word
    out = tmp_path / "out.h5"
    assert main(["prepare", "pet", "--listmode", str(header), "--image-size", "16", "--pixel-size-mm", "40",
                 "--max-slices", "1", "--out", str(out)]) == 0
    note = [line for line in capsys.readouterr().err.splitlines() if "header says" in line]
    assert len(note) == 1 and "3 bytes after the last whole 32-bit word ignored" in note[0]
    with h5py.File(out) as f:
        assert f.attrs["listmode_words"] == 4 and f.attrs["listmode_prompts"] == 2
        assert f.attrs["listmode_duration_s"] == 0.002 and not f.attrs["quantitative"]


def independent_decode(path):
    """The real file decoded here from the PETLINK layout, without the package: prompts and delayeds as
    (plane, view, arc-corrected bin) index triples, and the last time mark."""
    w = np.fromfile(path, "<u4")
    marks = w[(w >> 29) == 4] & 0x1FFFFFFF
    ev = w[(w >> 31) == 0]
    is_prompt = ((ev >> 30) & 1).astype(bool)
    addr = (ev & 0x3FFFFFFF).astype(np.int64)
    tang, view, z = addr % 344, (addr // 344) % 252, addr // (344 * 252)
    plane = np.zeros(4084, np.int64)  # 2 a + |d| by segment 0, -1, +1, -2, +2, ...
    start = 0
    for d in range(61):
        for _ in (1, 2) if d else (1,):
            plane[start:start + 64 - d] = 2 * np.arange(64 - d) + d
            start += 64 - d
    u = np.rint(335.0 * np.sin((tang - 172) * math.pi / 504) / 2.08626).astype(np.int64) + 141
    return ((plane[z][is_prompt], view[is_prompt], u[is_prompt]),
            (plane[z][~is_prompt], view[~is_prompt], u[~is_prompt]), int(marks.max()))


@pytest.mark.skipif(not HEADER.exists(), reason="needs ../shared/data/pet/stir_mmr_listmode (STIR test pack)")
def test_real_mmr_file(tmp_path, capsys):
    out = tmp_path / "mmr.h5"
    code = main(["prepare", "pet", "--listmode", str(HEADER), "--image-size", "32", "--pixel-size-mm", "18",
                 "--keep-measurement", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    note = [line for line in err.splitlines() if "PET_ACQ_small.l.hdr" in line]
    assert len(note) == 1 and "900 s" in note[0] and "331,257,106 words" in note[0] and "254,816 words" in note[0]
    prompts, delayed, last_mark_ms = independent_decode(MMR / "small_listmode_file.l")
    assert len(prompts[0]) == 218_881 and len(delayed[0]) == 35_320 and last_mark_ms == 612
    with h5py.File(out) as f:
        m = {k: f["measurement"][k][()] for k in f["measurement"]}
        attrs = dict(f.attrs)
        assert f["x_est"].shape == (127, 1, 32, 32) and np.isfinite(f["x1"][()]).all()
    halves = m["prompts_half1"].astype(np.int64) + m["prompts_half2"]
    expected = np.zeros((252, 283), np.int64)
    np.add.at(expected, prompts[1:], 1)
    np.testing.assert_array_equal(halves.sum(0), expected)  # bin by bin after summing over planes
    np.testing.assert_array_equal(halves.sum((1, 2)), np.bincount(prompts[0], minlength=127))
    assert abs(int(m["prompts_half1"].sum()) - 218_881 / 2) < 3 * math.sqrt(218_881) / 2  # random halves
    expected_delayed = np.zeros((127, 252, 283), np.int64)
    np.add.at(expected_delayed, delayed, 1)
    np.testing.assert_array_equal(m["delayed"], expected_delayed)  # kept apart from the prompts
    np.testing.assert_array_equal(m["delayed_half1"] + m["delayed_half2"], m["delayed"])
    assert abs(attrs["listmode_duration_s"] - last_mark_ms / 1000) <= 0.002 and attrs["header_duration_s"] == 900
    assert (attrs["isotope"], attrs["isotope_half_life_s"]) == ("F-18", 6586.2)
    assert not attrs["quantitative"] and "not quantitative" in attrs["quantitation"]
    assert (attrs["listmode_prompts"], attrs["listmode_delayeds"]) == (218_881, 35_320)


@pytest.mark.skipif(not HEADER.exists(), reason="needs ../shared/data/pet/stir_mmr_listmode (STIR test pack)")
def test_real_mmr_time_frames_follow_the_time_marks():
    """100 ms frames: half 1 holds exactly the prompts after marks 0-99, 200-299, ... (and those before mark 0)."""
    w = np.fromfile(MMR / "small_listmode_file.l", "<u4")
    is_mark = (w >> 29) == 4
    ms = np.maximum.accumulate(np.where(is_mark, (w & 0x1FFFFFFF).astype(np.int64), 0))
    prompt = ((w >> 31) == 0) & (((w >> 30) & 1) == 1)
    first_half = (ms // 100) % 2 == 0
    c = histogram_listmode(MMR / "small_listmode_file.l", frame_halves(100))
    assert (int(c.prompts[0].sum()), int(c.prompts[1].sum())) == (int((prompt & first_half).sum()),
                                                                  int((prompt & ~first_half).sum()))
    assert c.prompts[0].sum() + c.prompts[1].sum() == 218_881 and c.duration_s == 0.613


def test_time_frames_subtract_each_halfs_delayeds(tmp_path):
    """Synthetic stream, 5 ms frames: w1 x1 + w2 x2 = x_est with the delayeds split by the same frames, and the
    decay weights from the header's half-life (F-18) unless --half-life-s is given."""
    rng = np.random.default_rng(1)
    words = []
    for ms in range(20):
        n = 200
        z, view, tang = rng.integers(0, 3, n), rng.integers(0, 252, n), rng.integers(100, 244, n)
        words += [TIME | ms, *((rng.random(n) < 0.8) * PROMPT | address(z, view, tang)).tolist()]
    header = write_listmode(tmp_path, words)
    out = tmp_path / "frames.h5"
    assert main(["prepare", "pet", "--listmode", str(header), "--image-size", "32", "--pixel-size-mm", "12",
                 "--split", "time-frames", "--frame-s", "0.005", "--max-slices", "5", "--keep-measurement",
                 "--out", str(out)]) == 0
    with h5py.File(out) as f:
        x1, x2, x_est = f["x1"][()], f["x2"][()], f["x_est"][()]
        w1, w2 = f.attrs["split_weights"]
        assert f.attrs["split_half_life_s"] == 6586.2 and "own delayeds" in f.attrs["split"]
        d1, d2 = f["measurement/delayed_half1"][()], f["measurement/delayed_half2"][()]
    assert w1 == pytest.approx(0.5, abs=1e-6) and d1.sum() > 0 and d2.sum() > 0  # 2 + 2 frames of 5 ms
    np.testing.assert_allclose(w1 * x1 + w2 * x2, x_est, atol=1e-5 * np.abs(x_est).max())

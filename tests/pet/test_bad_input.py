"""prepare pet on bad input (issue 23): exit 2, one line naming the field, no traceback, nothing written.

One case per pattern: an empty acquisition, halves whose weights underflow, a bin size that is not one
sensible number, angles or units that are not numbers / UTF-8 text, pickled or truncated .npz files, a
histogram or an image grid too large for memory, and frame lengths or half-lives of 1e-300 s.
"""

import hashlib
import math
import zipfile

import h5py
import numpy as np
import pytest

from tomoconsensus.cli import main
from tomoconsensus.pet.frames import MIN_HALF_WEIGHT, TimeFrames

SHAPE = (1, 8, 10)
GOOD = {"angles_deg": np.arange(8) * 22.5, "bin_size_mm": 2.0}


def h5(path, datasets, attrs):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f[k] = v
        for k, v in attrs.items():
            f.attrs[k] = v
    return path


def histogram(t, **attrs):
    return h5(t / "p.h5", {"prompts": np.full(SHAPE, 3)}, {**GOOD, **attrs})


def listmode(t, n=200, duration=10.0, **attrs):
    rng = np.random.default_rng(0)
    return h5(t / "lm.h5", {"listmode_bin": rng.integers(0, 80, n), "listmode_time_s": rng.uniform(0, duration, n)},
              {**GOOD, "shape": SHAPE, "duration_s": duration, **attrs})


def truncated_npz(t):
    full = t / "full.npz"
    np.savez(full, prompts=np.random.default_rng(0).poisson(3.0, (1, 8, 1000)), **GOOD)
    cut = t / "cut.npz"
    cut.write_bytes(full.read_bytes()[:-4000])
    full.unlink()
    return cut


def object_npz(t):
    path = t / "obj.npz"
    np.savez(path, prompts=np.array([np.ones(3), "evil"], dtype=object), **GOOD)
    with zipfile.ZipFile(path) as z:
        assert z.read("prompts.npy")[:6] == b"\x93NUMPY"  # a pickled object array inside
    return path


CASES = {  # name -> (build(tmp) -> input, extra options, words in the one line)
    "empty listmode": (lambda t: h5(t / "e.h5", {"listmode_bin": np.zeros(0, np.int64)}, {**GOOD, "shape": SHAPE}),
                       [], "at least one prompt"),
    "weights underflow": (listmode, ["--split", "time-frames", "--frame-s", "1", "--half-life-s", "0.01"],
                          "at least 10% of the expected counts"),
    "bin size text": (lambda t: histogram(t, bin_size_mm="abc"), [], "bin_size_mm"),
    "bin size two values": (lambda t: histogram(t, bin_size_mm=[2.0, 3.0]), [], "bin_size_mm"),
    "bin size 1e300": (lambda t: histogram(t, bin_size_mm=1e300), [], "bin_size_mm"),
    "angles as text": (lambda t: histogram(t, angles_deg=np.array([f"{a}" for a in GOOD["angles_deg"]], "S")), [],
                       "angles_deg"),
    "units not utf-8": (lambda t: histogram(t, activity_units=np.bytes_(b"\xff\xfeBq")), [], "activity_units"),
    "object array npz": (object_npz, [], "no object arrays"),
    "truncated npz": (truncated_npz, [], "cut.npz"),
    "shape 1e5 x 1e5": (lambda t: h5(t / "big.h5", {"listmode_bin": np.arange(5)},
                                     {**GOOD, "shape": (1, 100_000, 100_000)}), [], "GiB"),
    "image size 1e5": (histogram, ["--image-size", "100000"], "image-size"),
    "frame 1e-300 s": (listmode, ["--split", "time-frames", "--frame-s", "1e-300"], "frame-s"),
    "half-life 1e-300 s": (listmode, ["--split", "time-frames", "--frame-s", "1", "--half-life-s", "1e-300"],
                           "half-life"),
}


def snapshot(folder):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    build, options, words = CASES[case]
    path = build(tmp_path)
    before = snapshot(tmp_path)
    argv = ["prepare", "pet", "--prompts", str(path), "--image-size", "16", "--pixel-size-mm", "2", *options,
            "--out", str(tmp_path / "out.h5")]
    with np.errstate(all="raise"):  # no silent overflow on the way to the refusal
        code = main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in lines[0], lines
    assert words in lines[0], lines[0]
    assert snapshot(tmp_path) == before


def test_weight_bound_is_the_stated_one():
    """The bound refuses w = 0.09 and keeps w = 0.11 (time shares of 2 frames: F/D and 1 - F/D)."""
    assert MIN_HALF_WEIGHT == 0.1
    assert min(TimeFrames(8.9, 10.0).weights()) == pytest.approx(0.11)
    with pytest.raises(ValueError, match="w1 = 0.91, w2 = 0.09"):
        TimeFrames(9.1, 10.0)
    with np.errstate(all="ignore"):  # each odd frame holds 2^-100 of the even frame before it (T = F / 100)
        d1, d2 = TimeFrames(1.0, 10.0).half_integrals(math.log(2) / 0.01)
    assert d2 / d1 == pytest.approx(2.0**-100, rel=1e-9) and 2.0**-100 == pytest.approx(7.89e-31, rel=1e-3)
    with pytest.raises(ValueError, match="w2 = 7.89e-31"):
        TimeFrames(1.0, 10.0, 0.01)

"""Prompt files: schema round trip, bad input (one line, exit 2, no output), prepare pet."""

import h5py
import numpy as np
import pytest

from tomoconsensus.cli import main
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.errors import InputError
from tomoconsensus.pet.io import read_prompts, write_prompts
from tomoconsensus.pet.simulate import PETSimulation, simulate_prompts

SMALL = PETSimulation(image_size=64, pixel_size_mm=6.0, n_views=64, n_bins=64, bin_size_mm=6.0, counts_per_slice=1e5)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Two embedded CT slices simulated as PET prompts (64^2 grid of 6 mm), written as HDF5."""
    from tomoconsensus.ct.io import read_images

    from tests.conftest import EMBEDDED_CT

    ct = read_images(EMBEDDED_CT)
    stack, sims = simulate_prompts(ct.hu[:2], ct.pixel_spacing_mm[:2], ct.slice_ids[:2], ct.patient_ids[:2], SMALL, 0)
    path = tmp_path_factory.mktemp("pet") / "prompts.h5"
    write_prompts(path, stack)
    return path, stack, sims


def write_h5(path, prompts, **extra):
    with h5py.File(path, "w") as f:
        f["prompts"] = prompts
        for key, value in extra.items():
            if key in ("angles_deg", "bin_size_mm", "shape"):
                f.attrs[key] = value
            else:
                f[key] = value
    return path


def good(shape=(1, 8, 10)):
    return {"angles_deg": np.arange(shape[1]) * 180.0 / shape[1], "bin_size_mm": 2.0}


def test_round_trip_and_counts(simulated):
    path, stack, sims = simulated
    back = read_prompts(path)
    assert np.array_equal(back.prompts, stack.prompts)
    np.testing.assert_allclose(back.multiplicative, stack.multiplicative, rtol=1e-6)
    assert back.activity_units.startswith("SUV") and back.slice_ids == stack.slice_ids
    totals = stack.prompts.sum((1, 2))
    assert np.all(np.abs(totals - 1e5) < 5 * np.sqrt(1e5))  # Poisson total about the stated count
    assert all(len(s.lesions) == 3 for s in sims)


def test_npz_and_listmode_inputs(tmp_path):
    rng = np.random.default_rng(0)
    prompts = rng.poisson(3.0, (2, 8, 10))
    npz = tmp_path / "p.npz"
    np.savez(npz, prompts=prompts, additive=np.ones(prompts.shape), delayed=prompts // 3, **good(prompts.shape))
    s = read_prompts(npz)
    assert np.array_equal(s.prompts, prompts) and s.additive.sum() == prompts.size
    assert np.array_equal(s.delayed, prompts // 3)
    back = read_prompts(write_prompts(tmp_path / "p.h5", s))
    assert np.array_equal(back.delayed, s.delayed)
    events = np.repeat(np.arange(prompts.size), prompts.ravel())
    rng.shuffle(events)
    lm = tmp_path / "lm.h5"
    with h5py.File(lm, "w") as f:
        f["listmode_bin"] = events
        f.attrs.update(shape=prompts.shape, **good(prompts.shape))
    assert np.array_equal(read_prompts(lm).prompts, prompts)


@pytest.mark.parametrize("case, field, words", [
    ("fractional", "prompts", "fractional"),
    ("negative", "prompts", "negative"),
    ("mult_shape", "multiplicative", "shape"),
    ("mult_zero", "multiplicative", "> 0"),
    ("add_nan", "additive", "finite"),
    ("angles", "angles_deg", "uniform"),
    ("no_bin", "bin_size_mm", "positive"),
    ("delayed_frac", "delayed", "fractional"),
    ("delayed_shape", "delayed", "shape"),
])
def test_bad_prompt_files(tmp_path, case, field, words):
    prompts = np.full((1, 8, 10), 2.0)
    extra = good()
    if case == "fractional":
        prompts[0, 0, 0] = 2.5
    elif case == "negative":
        prompts[0, 0, 0] = -1
    elif case == "mult_shape":
        extra["multiplicative"] = np.ones((1, 8, 9))
    elif case == "mult_zero":
        extra["multiplicative"] = np.zeros((1, 8, 10))
    elif case == "add_nan":
        extra["additive"] = np.full((1, 8, 10), np.nan)
    elif case == "angles":
        extra["angles_deg"] = np.linspace(0, 360, 8, endpoint=False)
    elif case == "no_bin":
        extra.pop("bin_size_mm")
    elif case == "delayed_frac":
        extra["delayed"] = np.full((1, 8, 10), 0.5)
    elif case == "delayed_shape":
        extra["delayed"] = np.ones((1, 8, 9), np.int32)
    path = write_h5(tmp_path / f"{case}.h5", prompts, **extra)
    with pytest.raises(InputError) as err:
        read_prompts(path)
    message = str(err.value)
    assert f"{case}.h5" in message and f"'{field}'" in message and words in message and "\n" not in message


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    path = write_h5(tmp_path / "frac.h5", np.full((1, 8, 10), 0.5), **good())
    out = tmp_path / "never.h5"
    args = ["prepare", "pet", "--prompts", str(path), "--image-size", "16", "--pixel-size-mm", "2", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "frac.h5" in err and "prompts" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".never*"))


def test_prepare_pet_cli(simulated, tmp_path, capsys):
    path, stack, _ = simulated
    out = tmp_path / "pet.h5"
    assert main(["prepare", "pet", "--prompts", str(path), "--image-size", "64", "--pixel-size-mm", "6",
                 "--seed", "3", "--out", str(out)]) == 0
    data = read_prepared(out)
    assert data.x1.shape == (2, 1, 64, 64) and data.modality == "pet" and data.attrs["units"].startswith("SUV")
    np.testing.assert_allclose((data.x1 + data.x2) / 2, data.x_est, atol=1e-5 * np.abs(data.x_est).max())
    np.testing.assert_array_equal(data.reference[:, 0], stack.reference)
    assert data.attrs["recon"] == "fbp" and "binomial" in data.attrs["split"]
    # a reference on another grid is refused
    bad = tmp_path / "bad.h5"
    assert main(["prepare", "pet", "--prompts", str(path), "--image-size", "32", "--pixel-size-mm", "12",
                 "--out", str(bad)]) == 2
    assert "reference" in capsys.readouterr().err and not bad.exists()


def test_prepare_pet_osem(simulated, tmp_path):
    path, _, _ = simulated
    out = tmp_path / "osem.h5"
    assert main(["prepare", "pet", "--prompts", str(path), "--image-size", "64", "--pixel-size-mm", "6",
                 "--recon", "osem", "--osem-iterations", "2", "--max-slices", "1", "--out", str(out)]) == 0
    data = read_prepared(out)
    assert data.attrs["recon"] == "osem" and data.x1.min() >= 0 and len(data) == 1


def test_prepare_pet_time_frames_end_to_end(simulated, tmp_path):
    """Simulated prompts as time-stamped F-18 events: the same x_est as thinning, w1 x1 + w2 x2 = x_est."""
    from tomoconsensus.pet.frames import F18_HALF_LIFE_S
    from tomoconsensus.pet.simulate import listmode_events

    path, stack, _ = simulated
    stack = read_prompts(path)
    stack.listmode = listmode_events(stack.prompts, 600.0, F18_HALF_LIFE_S, np.random.default_rng(0))
    lm = write_prompts(tmp_path / "lm.h5", stack)
    with h5py.File(lm) as f:
        assert "prompts" not in f and f.attrs["duration_s"] == 600.0
    common = ["prepare", "pet", "--prompts", str(lm), "--image-size", "64", "--pixel-size-mm", "6"]
    assert main([*common, "--out", str(tmp_path / "thin.h5")]) == 0
    assert main([*common, "--split", "time-frames", "--frame-s", "10", "--half-life-s", str(F18_HALF_LIFE_S),
                 "--out", str(tmp_path / "frames.h5")]) == 0
    thin, frames = read_prepared(tmp_path / "thin.h5"), read_prepared(tmp_path / "frames.h5")
    np.testing.assert_array_equal(frames.x_est, thin.x_est)  # the same prompts
    w1, w2 = frames.attrs["split_weights"]
    assert w1 == pytest.approx(1.001053 / 2.001053, rel=1e-6)  # 30 frame pairs of F-18, ratio e^{λF}
    np.testing.assert_allclose(w1 * frames.x1 + w2 * frames.x2, frames.x_est, atol=1e-5 * np.abs(thin.x_est).max())
    assert not np.array_equal(frames.x1, thin.x1) and "time frames of 10 s" in frames.attrs["split"]

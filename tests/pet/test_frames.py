"""Time-frame alternation of list-mode events against the Poisson-process ground truth."""

import math

import h5py
import numpy as np
import pytest

from tomoconsensus.cli import main
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.errors import InputError
from tomoconsensus.pet.frames import F18_HALF_LIFE_S, TimeFrames, interval_integrals
from tomoconsensus.pet.io import ListMode, read_prompts, write_prompts
from tomoconsensus.pet.modality import PETMeasurement, PETModality
from tomoconsensus.pet.recon import pet_geometry

from tests.pet.test_recon import R_MM, check_unbiased_halves

O15_HALF_LIFE_S = 122.24


def decayed_times(n: int, half_life_s: float, duration_s: float, rng) -> np.ndarray:
    """``n`` event times from the density exp(-λ t) on [0, D) by inverse-CDF sampling (static source)."""
    lam = math.log(2.0) / half_life_s
    u = rng.random(n)
    return np.minimum(-np.log1p(-u * -np.expm1(-lam * duration_s)) / lam, np.nextafter(duration_s, 0))


def listmode_draw(expected: np.ndarray, half_life_s: float, duration_s: float, rng):
    """Events of a static, decaying source: Poisson counts per bin, times from the decayed rate."""
    counts = rng.poisson(expected).ravel()
    bins = np.repeat(np.arange(counts.size), counts)
    return bins, decayed_times(bins.size, half_life_s, duration_s, rng), counts.reshape(expected.shape)


def test_weights_are_the_decayed_integrals():
    frames = TimeFrames(10.0, 600.0, F18_HALF_LIFE_S)
    lam = math.log(2) / F18_HALF_LIFE_S
    d1, d2 = frames.half_integrals()
    assert d1 / d2 == pytest.approx(math.exp(lam * 10.0), rel=1e-12)  # 30 frame pairs, each e^{λF}
    assert d1 + d2 == pytest.approx((1 - math.exp(-lam * 600)) / lam, rel=1e-12)
    assert TimeFrames(10.0, 600.0).weights() == (0.5, 0.5)
    # the caveat's number: F-18, 10 s frames over 10 min, weights without decay: half means differ by 0.105 %
    assert d1 / d2 == pytest.approx(1.001053, abs=1e-6)
    assert sum(TimeFrames(45.0, 600.0, 300.0).weights()) == pytest.approx(1.0)
    assert len(TimeFrames(45.0, 600.0).edges_s()) == 15 and TimeFrames(45.0, 600.0).edges_s()[-1] == 600.0
    np.testing.assert_allclose(interval_integrals(np.array([0.0, 1e-9, 5.0]), 1e-12), [1e-9, 5.0 - 1e-9], rtol=1e-9)
    for bad in (0.0, 600.0, math.inf):
        with pytest.raises(InputError, match="frame-s"):
            TimeFrames(bad, 600.0)


def test_simulated_event_times_follow_the_decay():
    """tomoconsensus.pet.simulate against the analytic decay: share of events in the first half, mean time."""
    from tomoconsensus.pet.simulate import decayed_event_times, listmode_events

    n, duration = 400_000, 600.0
    lam = math.log(2) / O15_HALF_LIFE_S
    t = decayed_event_times(n, duration, O15_HALF_LIFE_S, np.random.default_rng(5))
    assert t.min() >= 0 and t.max() < duration
    p_first = -math.expm1(-lam * duration / 2) / -math.expm1(-lam * duration)
    assert abs((t < duration / 2).mean() - p_first) < 4 * math.sqrt(p_first * (1 - p_first) / n)
    mean = 1 / lam - duration * math.exp(-lam * duration) / -math.expm1(-lam * duration)
    assert abs(t.mean() - mean) < 4 * t.std() / math.sqrt(n)
    prompts = np.random.default_rng(6).poisson(2.0, (2, 4, 5))
    lm = listmode_events(prompts, 60.0, None, np.random.default_rng(7))
    assert np.array_equal(np.bincount(lm.bin_index, minlength=40).reshape(prompts.shape), prompts)
    assert np.all(np.diff(lm.time_s) >= 0) and lm.duration_s == 60.0


def test_halves_are_independent_poisson_with_the_decayed_shares():
    """O-15 (T = 122 s) over 10 min, 10 s frames, 10^6 bins: ~2e6 events."""
    rng = np.random.default_rng(0)
    lam = rng.uniform(0.2, 4.0, 1_000_000)
    bins, times, y = listmode_draw(lam, O15_HALF_LIFE_S, 600.0, rng)
    frames = TimeFrames(10.0, 600.0, O15_HALF_LIFE_S)
    h1, h2 = frames.split_events(bins, times, lam.shape)
    assert np.array_equal(h1 + h2, y)
    (w1, w2), total = frames.weights(), lam.sum()
    for h, w in ((h1, w1), (h2, w2)):
        assert abs(h.sum() - w * total) < 4 * math.sqrt(w * total)  # mean = w_k λ, within 4 SE
        assert abs(np.var(h - w * lam) / (w * lam.mean()) - 1) < 0.01  # Poisson: variance = mean
    rho = float(np.corrcoef(h1 - w1 * lam, h2 - w2 * lam)[0, 1])
    assert abs(rho) < 0.01, rho  # standard error 1e-3
    # without the half-life the weights are the time shares (1/2): half 1 is high by D1/D2 = e^{λF}
    predicted = math.exp(math.log(2) * 10.0 / O15_HALF_LIFE_S)
    assert predicted == pytest.approx(1.0584, abs=1e-4)
    ratio = h1.sum() / h2.sum()
    se = ratio * math.sqrt(1 / h1.sum() + 1 / h2.sum())
    assert abs(ratio - predicted) < 4 * se and ratio - 1 > 20 * se  # measured 1.058 +- 0.0015


def test_mean_of_x1_over_draws_is_the_noiseless_fbp():
    """Fresh list-mode data + time-frame split per draw (T = 300 s, 45 s frames over 600 s, w1 != w2)."""
    from tomoconsensus.pet.recon import attenuation_factors
    from tomoconsensus.tomo.projector import AstraProjector

    geom = pet_geometry(np.arange(64) * 180.0 / 64, 64, 6.0, 64, 6.0)
    x, y = geom.pixel_centers_mm()
    act = (x**2 + y**2 < R_MM**2).astype(np.float32)
    with AstraProjector(geom, use_cuda=False, kind="strip") as proj:
        p = proj.forward(act).astype(np.float64)
    m = 0.1 * attenuation_factors(0.0096 * act, geom)
    a = np.full(p.shape, 0.5)
    frames = TimeFrames(45.0, 600.0, 300.0)
    modality = PETModality(geom, "test units", frames=frames)

    def draw(rng):
        bins, times, y_all = listmode_draw(m * p + a, 300.0, 600.0, rng)
        return PETMeasurement(y_all, m, a, frames=frames.split_events(bins, times, p.shape))

    w1 = frames.weights()[0]
    assert abs(w1 - 0.5) > 0.03  # a real test of the weights: w1 = 0.538
    check_unbiased_halves(geom, modality, draw, p, m, np.random.default_rng(1), draws=300, body_radius_mm=R_MM - 12)


def write_listmode(path, events=50, shape=(1, 8, 10), times=None, duration=10.0, delayed=False):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["listmode_bin"] = rng.integers(0, np.prod(shape), events)
        if times is not False:
            f["listmode_time_s"] = rng.uniform(0, duration, events) if times is None else times
        if delayed:
            f["delayed"] = np.ones(shape, np.int32)
        f.attrs.update(shape=shape, angles_deg=np.arange(shape[1]) * 180.0 / shape[1], bin_size_mm=2.0)
        if duration is not None:
            f.attrs["duration_s"] = duration
    return path


@pytest.mark.parametrize("case, field, words", [
    ("length", "listmode_time_s", "one per event"),
    ("negative", "listmode_time_s", "[0, duration_s"),
    ("nan", "listmode_time_s", "finite"),
    ("beyond", "listmode_time_s", "[0, duration_s = 10)"),
    ("no_duration", "duration_s", "positive"),
])
def test_bad_event_times(tmp_path, case, field, words):
    times = np.linspace(0, 9, 50)
    duration = 10.0
    if case == "length":
        times = times[:-1]
    elif case in ("negative", "nan", "beyond"):
        times[3] = {"negative": -1.0, "nan": np.nan, "beyond": 10.0}[case]
    else:
        duration = None
    path = write_listmode(tmp_path / f"{case}.h5", times=times, duration=duration)
    with pytest.raises(InputError) as err:
        read_prompts(path)
    message = str(err.value)
    assert f"{case}.h5" in message and f"'{field}'" in message and words in message and "\n" not in message


def test_listmode_round_trip(tmp_path):
    stack = read_prompts(write_listmode(tmp_path / "lm.h5"))
    assert stack.listmode.bin_index.shape == (50,) and stack.listmode.duration_s == 10.0
    back = read_prompts(write_prompts(tmp_path / "back.h5", stack))
    assert np.array_equal(back.prompts, stack.prompts) and isinstance(back.listmode, ListMode)
    assert np.array_equal(back.listmode.time_s, stack.listmode.time_s)
    npz = tmp_path / "lm.npz"
    np.savez(npz, listmode_bin=stack.listmode.bin_index, listmode_time_s=stack.listmode.time_s, shape=(1, 8, 10),
             duration_s=10.0, angles_deg=np.arange(8) * 22.5, bin_size_mm=2.0)
    assert np.array_equal(read_prompts(npz).listmode.time_s, stack.listmode.time_s)


def prepare(path, out, *extra):
    try:
        return main(["prepare", "pet", "--prompts", str(path), "--image-size", "8", "--pixel-size-mm", "2",
                     "--out", str(out), *extra])
    except SystemExit as exc:  # argparse (--frame-s 0)
        return exc.code


@pytest.mark.parametrize("case, extra, words", [
    ("no_times", ("--split", "time-frames", "--frame-s", "1"), "listmode_time_s"),
    ("no_frame", ("--split", "time-frames"), "frame-s"),
    ("zero_frame", ("--split", "time-frames", "--frame-s", "0"), "frame-s"),
    ("long_frame", ("--split", "time-frames", "--frame-s", "10"), "frame-s"),
    ("thinning_frame", ("--frame-s", "1"), "only with --split time-frames"),
    ("beyond", ("--split", "time-frames", "--frame-s", "1"), "listmode_time_s"),
    ("delayed", ("--split", "time-frames", "--frame-s", "1"), "delayed"),
])
def test_cli_refuses_bad_time_frame_input(tmp_path, capsys, case, extra, words):
    times = np.linspace(0, 12, 50) if case == "beyond" else None
    path = write_listmode(tmp_path / "lm.h5", times=False if case == "no_times" else times,
                          delayed=case == "delayed")
    out = tmp_path / "never.h5"
    assert prepare(path, out, *extra) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".never*"))


def test_cli_time_frames_records_the_split(tmp_path):
    path = write_listmode(tmp_path / "lm.h5", events=2000)
    out = tmp_path / "frames.h5"
    assert prepare(path, out, "--split", "time-frames", "--frame-s", "1", "--half-life-s", "6586.2") == 0
    data = read_prepared(out)
    w = np.asarray(data.attrs["split_weights"])
    assert "time frames of 1 s" in data.attrs["split"] and "half-life 6586.2 s" in data.attrs["split"]
    assert data.attrs["split_frame_s"] == 1.0 and w.sum() == pytest.approx(1.0) and w[0] > w[1]
    np.testing.assert_allclose(w[0] * data.x1 + w[1] * data.x2, data.x_est, atol=1e-5 * np.abs(data.x_est).max())


def test_thinning_is_unchanged_by_the_option():
    """The default split is still y1 ~ Binomial(y, 1/2) (same draws for a seed), a/2 per half, scale 2;
    checked bit for bit against main's prepare pet (fbp, osem, with delayed) when the option was added."""
    from tomoconsensus.counts import binomial_thin

    rng = np.random.default_rng(0)
    y, d, a, m = rng.poisson(5.0, (8, 10)), rng.poisson(1.0, (8, 10)), np.full((8, 10), 0.4), np.full((8, 10), 2.0)
    geom = pet_geometry(np.arange(8) * 180.0 / 8, 10, 2.0, 8, 2.0)
    h1, h2 = PETModality(geom, "u").split(PETMeasurement(y, m, a, d), np.random.default_rng(3))
    ref = np.random.default_rng(3)
    (y1, y2), (d1, d2) = binomial_thin(y, ref), binomial_thin(d, ref)
    assert np.array_equal(h1.counts, y1) and np.array_equal(h2.counts, y2) and h1.scale == h2.scale == 2.0
    assert np.array_equal(h1.additive, a / 2 + d1) and np.array_equal(h2.additive, a / 2 + d2)

"""tomoconsensus.local_means: out = f + G_sigma * (x_est - f), against closed forms."""

import h5py
import numpy as np
import pytest

from tomoconsensus.cli import main
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.denoising import denoise, read_denoised
from tomoconsensus.errors import InputError
from tomoconsensus.learn.loop import train
from tomoconsensus.local_means import keep_local_means, kept_noise_fraction, sigma_px

from tests.conftest import tiny_config


def _disc(n: int, radius: float) -> np.ndarray:
    y, x = np.mgrid[:n, :n] - (n - 1) / 2
    return (np.hypot(y, x) <= radius).astype(float)


@pytest.fixture
def x_est():
    return np.random.default_rng(0).normal(size=(2, 3, 96, 96))


def test_a_uniform_offset_is_removed_exactly(x_est):
    out = keep_local_means(x_est - 0.25, x_est, sigma=2.0)
    np.testing.assert_allclose(out, x_est, atol=1e-6)


def test_a_disc_of_radius_four_sigma_keeps_its_mean_at_the_centre():
    """A network that shrinks a disc by b: the offset left at the centre is exp(-r^2/2 sigma^2) b."""
    n, sigma, b = 129, 3.0, 1.0
    x_est = np.zeros((n, n))
    disc = _disc(n, 4 * sigma)
    out = keep_local_means(x_est - b * disc, x_est, sigma)
    left = -out[n // 2, n // 2] / b
    assert left == pytest.approx(np.exp(-8.0), abs=2e-4)  # 3.4e-4; the pixel grid's disc is not quite round
    core = _disc(n, 2 * sigma) > 0  # the central half of the diameter, as the iodine ROIs
    assert abs(out[core].mean()) / b < 0.02
    assert abs(out[disc == 0].mean()) < 0.01  # outside, the disc's low-pass leaks in as a thin halo only


def test_high_frequencies_come_from_the_network(x_est):
    """A Nyquist checkerboard that the network adds survives (G removes it from the residual), away
    from the edges, where the reflection breaks the pattern."""
    checker = 0.1 * (-1.0) ** np.add.outer(np.arange(96), np.arange(96))
    out = keep_local_means(x_est + checker, x_est, sigma=1.5)
    inner = (..., slice(8, -8), slice(8, -8))
    np.testing.assert_allclose((out - x_est)[inner], np.broadcast_to(checker, out.shape)[inner], atol=1e-3)


def test_kept_noise_of_white_noise_is_one_over_four_pi_sigma_squared():
    """White noise keeps sum(w^2) of its variance, the kernel's, = 1 / (4 pi sigma^2) in the continuum;
    the object shared by both halves does not enter."""
    rng = np.random.default_rng(1)
    obj = 50.0 * _disc(256, 80)
    for sigma in (1.0, 2.0):
        n1, n2 = rng.normal(size=(2, 8, 256, 256))
        assert kept_noise_fraction(obj + n1, obj + n2, sigma) == pytest.approx(1 / (4 * np.pi * sigma ** 2),
                                                                              rel=0.06)


def test_kept_noise_is_measured_not_assumed(prepared_ct):
    """On the CT halves (quarter dose, 3 mm pixels) the share at sigma = 2 px is a few %: FBP's noise here
    is not pure ramp noise (starvation streaks are long and low-frequency); the value is recorded with
    every output because it depends on the data."""
    data = read_prepared(prepared_ct)
    kept = [kept_noise_fraction(data.x1[:], data.x2[:], s) for s in (0.5, 1.0, 2.0)]
    assert kept[0] > kept[1] > kept[2] > 0 and kept[0] < 1
    assert 0.005 < kept[2] < 0.1


def test_sigma_is_an_eighth_of_the_diameter_in_pixels():
    assert sigma_px(18.0, 3.0) == pytest.approx(0.75)
    with pytest.raises(InputError, match="pixel_size_mm"):
        sigma_px(18.0, None, "mr.h5")
    with pytest.raises(InputError, match="diameter_mm"):
        sigma_px(0.0, 1.0)


def test_denoise_keeps_means_and_records_the_price(prepared_ct, tmp_path, capsys):
    train(tiny_config(method="noise2noise", max_steps=2), prepared_ct, tmp_path / "run", progress=False)
    plain = denoise(tmp_path / "run", prepared_ct, tmp_path / "plain.h5", device="cpu", progress=False)
    assert main(["denoise", "--run", str(tmp_path / "run"), "--data", str(prepared_ct), "--out",
                 str(tmp_path / "kept.h5"), "--device", "cpu", "--keep-means-mm", "12"]) == 0
    assert "local means of >= 12 mm kept (sigma 0.50 px" in capsys.readouterr().out
    data = read_prepared(prepared_ct)
    f = read_denoised(plain.path)[0]
    kept, _, attrs = read_denoised(tmp_path / "kept.h5")
    np.testing.assert_allclose(kept, keep_local_means(f, data.x_est[:], 0.5), atol=1e-6)
    assert attrs["keep_means_mm"] == 12.0 and attrs["keep_means_sigma_px"] == pytest.approx(0.5)
    assert 0 < attrs["keep_means_noise_fraction"] < 1
    with h5py.File(tmp_path / "kept.h5") as h:
        assert h.attrs["variant"] == "mean"


def test_keep_means_refuses_images_input(prepared_ct, tmp_path, capsys):
    assert main(["denoise", "--run", str(tmp_path / "none"), "--images", str(tmp_path), "--out",
                 str(tmp_path / "o"), "--keep-means-mm", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--keep-means-mm" in err[0]

import numpy as np
import pytest

from tomoconsensus.metrics import rmse, ssim
from tomoconsensus.mr.presentation import magnitude, mr_metrics
from tomoconsensus.tomo.presentation import hu_metrics


def test_constant_offset_of_10_hu_gives_rmse_10():
    ref = np.random.default_rng(0).normal(0, 50, (64, 64))
    assert hu_metrics(ref + 10.0, ref)["rmse_hu"] == pytest.approx(10.0, rel=1e-9)


def test_identical_images_give_ssim_1_and_infinite_psnr():
    ref = np.random.default_rng(0).normal(40, 80, (64, 64))
    m = hu_metrics(ref, ref)
    assert m["ssim"] == pytest.approx(1.0) and m["rmse_hu"] == 0.0 and m["psnr_db"] == np.inf


def test_ssim_is_computed_inside_the_liver_window():
    ref = np.full((64, 64), 40.0)
    ref[20:40, 20:40] = 100.0
    # differences outside [-160, 240] HU (bone 1000 vs 2000, air) do not count for SSIM
    other = ref.copy()
    ref_bone, other_bone = ref.copy(), ref.copy()
    ref_bone[:5] = 1000.0
    other_bone[:5] = 2000.0
    assert hu_metrics(other_bone, ref_bone)["ssim"] == pytest.approx(hu_metrics(other, ref)["ssim"])
    # RMSE is on the full range: 1000 HU difference on 5 of 64 rows
    assert hu_metrics(other_bone, ref_bone)["rmse_hu"] == pytest.approx(1000 * np.sqrt(5 / 64))


def test_ssim_drops_with_noise_and_hand_computed_value():
    rng = np.random.default_rng(1)
    ref = rng.uniform(0, 1, (64, 64))
    assert ssim(ref + rng.normal(0, 0.2, ref.shape), ref, 1.0) < 0.9
    # constant images: SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1), C1 = (0.01 L)^2
    a, b = np.full((32, 32), 0.5), np.full((32, 32), 0.4)
    c1 = 0.01**2
    assert ssim(a, b, 1.0) == pytest.approx((2 * 0.5 * 0.4 + c1) / (0.25 + 0.16 + c1), rel=1e-6)


def test_mr_metrics_use_magnitude():
    ref = np.stack([np.full((16, 16), 0.3), np.full((16, 16), 0.4)])  # |.| = 0.5
    rotated = np.stack([np.full((16, 16), 0.5), np.zeros((16, 16))])  # same magnitude, other phase
    assert magnitude(ref) == pytest.approx(np.full((16, 16), 0.5))
    assert mr_metrics(rotated, ref)["rmse_1e-3"] == pytest.approx(0.0, abs=1e-9)
    assert rmse(np.ones(4), np.zeros(4)) == 1.0

"""The TV weight chosen on the validation reference (issue 21, section 3), on analytic phantoms."""

import dataclasses
import json

import h5py
import numpy as np
import pytest

from tomoconsensus.cli import main
from tomoconsensus.ct.noise import mu_to_hu, simulate_low_dose
from tomoconsensus.ct.tv_baseline import tv_reconstruct
from tomoconsensus.ct.tv_tuning import DEFAULT_GRID, tune_tv_lambda
from tomoconsensus.errors import InputError
from tomoconsensus.tomo.projector import AstraProjector
from tomoconsensus.tomo.tv import TVConfig

from tests.conftest import MU_WATER, disk

FAST = TVConfig(n_iter=20, power_iterations=8)


@pytest.fixture(scope="module")
def small_geometry(demo_geometry):
    """64^2 at 6 mm, 120 views: the demo's distances, a quarter of its work per projection."""
    return dataclasses.replace(demo_geometry, image_size=64, pixel_size_mm=6.0, n_views=120, n_detectors=96,
                               detector_pitch_mm=2 * demo_geometry.detector_pitch_mm)


def phantom_pairs(geom, dose: float, seeds=(0, 1)):
    """(noisy sinogram, exact reference in HU) of a water cylinder with a -300 HU and a +200 HU insert."""
    mu = disk(geom, 150.0) + disk(geom, 40.0, -0.3 * MU_WATER, (60.0, 0.0)) + disk(geom, 30.0, 0.2 * MU_WATER,
                                                                                     (-50.0, 30.0))
    with AstraProjector(geom, kind="strip") as proj:
        clean = proj.forward(mu)
    reference = mu_to_hu(mu, geom.protocol.mu_water_per_mm)
    return [(simulate_low_dose(clean, geom, dose, np.random.default_rng(s)), reference) for s in seeds]


def test_table_is_the_rmse_of_each_weight_and_more_noise_needs_a_larger_weight(small_geometry):
    grid = (1e-4, 1e-3, 1e-2)
    low = tune_tv_lambda(phantom_pairs(small_geometry, 0.05), small_geometry, grid, FAST)
    high = tune_tv_lambda(phantom_pairs(small_geometry, 1.0), small_geometry, grid, FAST)
    assert low.grid == grid and low.slices == 2 and low.lam == grid[int(np.argmin(low.rmse_hu))]
    assert low.lam > high.lam  # a noisier scan is best reconstructed with more regularisation
    # each entry is the mean RMSE of tv_reconstruct at that weight against the exact phantom
    sino, ref = phantom_pairs(small_geometry, 0.05, seeds=(0,))[0]
    direct = np.sqrt(np.mean((mu_to_hu(tv_reconstruct(sino, small_geometry, dataclasses.replace(FAST, lam=1e-3)),
                                       small_geometry.protocol.mu_water_per_mm) - ref) ** 2))
    one = tune_tv_lambda([(sino, ref)], small_geometry, (1e-3,), FAST)
    assert one.rmse_hu[0] == pytest.approx(direct, rel=1e-3)
    attrs = low.attributes()
    assert [row["lam"] for row in json.loads(attrs["tv_lam_grid"])] == list(grid)
    assert attrs["tv_lam_choice"] == "validation patient reference RMSE, grid 0.0001..0.01 (3 log-spaced), " \
                                    "2 validation slices"
    assert f"**{low.lam:.3g}**" in low.markdown()


def test_default_grid_is_six_log_spaced_weights():
    assert len(DEFAULT_GRID) == 6 and DEFAULT_GRID[0] == pytest.approx(1e-4) and DEFAULT_GRID[-1] == pytest.approx(1e-2)
    assert np.allclose(np.diff(np.log(DEFAULT_GRID)), np.log(10) * 2 / 5)


def test_tuning_refuses_no_slices_and_non_positive_weights(small_geometry):
    with pytest.raises(InputError, match="at least one validation slice"):
        tune_tv_lambda([], small_geometry, (1e-3,), FAST)
    with pytest.raises(InputError, match="positive TV weights"):
        tune_tv_lambda(phantom_pairs(small_geometry, 1.0, (0,)), small_geometry, (0.0, 1e-3), FAST)


def test_prepare_ct_tv_lam_auto_records_the_choice(tmp_path):
    rng = np.random.default_rng(0)
    test, val = tmp_path / "test.npy", tmp_path / "val.npy"
    for path in (test, val):
        np.save(path, np.where(np.hypot(*np.mgrid[-32:32, -32:32]) < 24, 0.0, -1000.0)[None]
                + rng.normal(0, 5, (1, 64, 64)))
    common = ["prepare", "ct", "--images", str(test), "--geometry", "demo-fanbeam", "--pixel-spacing-mm", "6",
              "--tv", "--tv-iter", "5", "--device", "cpu"]
    out = tmp_path / "prepared.h5"
    assert main(common + ["--tv-lam", "auto", "--out", str(out)]) == 2 and not out.exists()  # no --tv-val
    assert main(common + ["--tv-lam", "auto", "--tv-val", str(test), "--out", str(out)]) == 2 and not out.exists()
    assert main(common + ["--tv-val", str(val), "--out", str(out)]) == 2 and not out.exists()  # fixed weight
    assert main(common + ["--tv-lam", "auto", "--tv-val", str(val), "--tv-val-slices", "1", "--out", str(out)]) == 0
    with h5py.File(out) as f:
        grid = json.loads(f.attrs["tv_lam_grid"])
        assert [row["lam"] for row in grid] == pytest.approx(list(DEFAULT_GRID))
        assert f.attrs["tv_lam"] == min(grid, key=lambda row: row["rmse_hu"])["lam"]
        assert f.attrs["tv_lam_choice"].endswith("1 validation slices") and "baselines/tv" in f

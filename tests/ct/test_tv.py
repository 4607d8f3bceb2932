import numpy as np

from tomoconsensus.ct.noise import simulate_low_dose
from tomoconsensus.ct.tv_baseline import tv_reconstruct
from tomoconsensus.tomo.fbp import fbp
from tomoconsensus.tomo.projector import AstraProjector
from tomoconsensus.tomo.tv import TVConfig

from tests.conftest import MU_WATER, disk


def test_tv_removes_noise_without_bias_on_piecewise_constant_phantom(demo_geometry):
    phantom = disk(demo_geometry, 120.0) + disk(demo_geometry, 25.0, 0.3 * MU_WATER, centre=(40.0, 0.0))
    with AstraProjector(demo_geometry, kind="strip") as proj:
        noisy = simulate_low_dose(proj.forward(phantom), demo_geometry, 0.1, np.random.default_rng(0))
    x, y = demo_geometry.pixel_centers_mm()
    water = (x + 50) ** 2 + y**2 < 30.0**2
    hu = lambda im: (im[water] / MU_WATER - 1) * 1000  # noqa: E731
    rec_fbp = hu(fbp(noisy, demo_geometry))
    rec_tv = hu(tv_reconstruct(noisy, demo_geometry, TVConfig(lam=3e-3, n_iter=30)))
    assert rec_tv.std() < 0.5 * rec_fbp.std()
    assert abs(rec_tv.mean()) < 5.0

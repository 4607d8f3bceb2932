"""The fast CT preparation path computes the same numbers as the straightforward one.

"Old" below is the pipeline before the compiled backprojection: torch backprojection loop, one
ASTRA thread, an FBP of each half, an FBP of all views for x_est and another for the reference.
"""

import dataclasses
from itertools import islice

import numpy as np
import pytest

from tomoconsensus.ct.io import read_images
from tomoconsensus.ct.modality import CTModality
from tomoconsensus.ct.noise import hu_to_mu, mu_to_hu, simulate_low_dose
from tomoconsensus.ct.sources import simulated_slices, slice_rngs
from tomoconsensus.data.prepared import read_prepared, write_prepared
from tomoconsensus.tomo.fbp import FBP
from tomoconsensus.tomo.geometry import ParallelBeamGeometry
from tomoconsensus.tomo.grid import to_geometry_grid
from tomoconsensus.tomo.projector import AstraProjector
from tomoconsensus.tomo.split import odd_even_views

from tests.conftest import EMBEDDED_CT, MU_WATER, disk

CHUNK = 90  # views per torch launch: same arithmetic as the default 1, far less Python overhead


def rel_max(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def phantom(geom):
    return disk(geom, 100.0) + disk(geom, 20.0, 0.5 * MU_WATER, centre=(40.0, -25.0))


@pytest.mark.parametrize("views", [None, "odd"])
def test_compiled_backprojection_equals_torch_loop_fan(demo_geometry, views):
    with AstraProjector(demo_geometry, kind="strip") as proj:
        sino = proj.forward(phantom(demo_geometry))
    idx = None if views is None else odd_even_views(demo_geometry.n_views)[0]
    part = sino if idx is None else sino[idx]
    batch = np.stack([part, 0.5 * part + 0.01])  # two different images through one call
    fast = FBP(demo_geometry, idx)(batch).numpy()
    slow = FBP(demo_geometry, idx, backend="torch", view_chunk=CHUNK)(batch).numpy()
    assert rel_max(fast, slow) < 1e-5  # same float32 arithmetic, other summation order (measured ~1e-6)


def test_compiled_backprojection_equals_torch_loop_parallel():
    geom = ParallelBeamGeometry(image_size=96, pixel_size_mm=1.0, n_views=120, n_detectors=140, detector_pitch_mm=1.0)
    x, y = geom.pixel_centers_mm()
    image = np.where(x**2 + (y / 1.3) ** 2 < 35**2, 1.0, 0).astype(np.float32)
    with AstraProjector(geom, kind="strip") as proj:
        sino = proj.forward(image)
    assert rel_max(FBP(geom)(sino).numpy(), FBP(geom, backend="torch", view_chunk=CHUNK)(sino).numpy()) < 1e-5


def test_x_est_is_the_mean_of_the_halves_and_equals_the_fbp_of_all_views(demo_geometry):
    """x_est from the halves (no third FBP) vs an FBP of all views by the old torch loop: 1e-5 relative."""
    with AstraProjector(demo_geometry, kind="strip") as proj:
        sino = simulate_low_dose(proj.forward(phantom(demo_geometry)), demo_geometry, 0.25, np.random.default_rng(3))
    ct = CTModality(demo_geometry)
    assert ct.halves_average_to_all
    images = ct.split_and_reconstruct(sino)
    odd, even = odd_even_views(demo_geometry.n_views)
    old = [FBP(demo_geometry, v, backend="torch", view_chunk=CHUNK) for v in (odd, even, None)]
    x1, x2, full = old[0](sino[odd]).numpy(), old[1](sino[even]).numpy(), old[2](sino).numpy()
    units = lambda mu: mu_to_hu(mu, MU_WATER) / 1000  # noqa: E731
    assert rel_max(images.x1[0], units(x1)) < 1e-5
    assert rel_max(images.x2[0], units(x2)) < 1e-5
    assert rel_max(images.x_est[0], units(full)) < 1e-5
    np.testing.assert_allclose(images.x_est, (images.x1 + images.x2) / 2, rtol=0, atol=2e-6)  # 0.002 HU


def test_odd_view_count_falls_back_to_its_own_fbp_of_all_views(demo_geometry):
    geom = dataclasses.replace(demo_geometry, n_views=91)  # 46 even, 45 odd views: weights do not halve
    with AstraProjector(geom, kind="line") as proj:
        sino = proj.forward(phantom(geom))
    ct = CTModality(geom)
    assert not ct.halves_average_to_all
    images = ct.split_and_reconstruct(sino)
    assert rel_max(images.x_est, ct.estimate(sino)) < 1e-6
    assert rel_max((images.x1 + images.x2) / 2, images.x_est) > 1e-3  # the mean would be wrong here


def test_threaded_forward_projection_is_bit_identical(demo_geometry):
    image = phantom(demo_geometry)
    with (AstraProjector(demo_geometry, kind="strip") as one,
          AstraProjector(demo_geometry, kind="strip", threads=3) as three):
        np.testing.assert_array_equal(three.forward(image), one.forward(image))


def test_prepared_file_matches_the_old_pipeline(tmp_path, demo_geometry):
    """An embedded clinical slice: every dataset within float32 round-off of the old computation."""
    stack = read_images(EMBEDDED_CT)
    out = tmp_path / "new.h5"
    write_prepared(out, CTModality(demo_geometry), islice(simulated_slices(stack, demo_geometry, 0.25, 7), 1), 1, 0,
                   progress=False)
    new = read_prepared(out)
    odd, even = odd_even_views(demo_geometry.n_views)
    ops = [FBP(demo_geometry, v, backend="torch", view_chunk=CHUNK) for v in (odd, even, None)]
    units = lambda mu: (mu_to_hu(mu.numpy(), MU_WATER) / 1000)[None]  # noqa: E731
    with AstraProjector(demo_geometry, kind="strip") as proj:
        for i, rng in enumerate(slice_rngs(7, len(stack.hu))[:1]):
            hu = to_geometry_grid(stack.hu[i], float(stack.pixel_spacing_mm[i]), demo_geometry)
            clean = proj.forward(hu_to_mu(hu, MU_WATER))
            sino = simulate_low_dose(clean, demo_geometry, 0.25, rng)
            old = {"x1": units(ops[0](sino[odd])), "x2": units(ops[1](sino[even])), "x_est": units(ops[2](sino)),
                   "reference": units(ops[2](clean))}
            for name, image in old.items():
                assert rel_max(getattr(new, name)[i], image) < 1e-5, name


def test_backprojection_leaves_torch_threading_alone(demo_geometry):
    """Numba runs on its own workqueue pool: an OpenMP pool beside torch's made later training 30-100x slower."""
    import numba
    import torch

    threads = torch.get_num_threads()
    FBP(demo_geometry)(np.zeros((demo_geometry.n_views, demo_geometry.n_detectors), np.float32))
    assert numba.threading_layer() == "workqueue"
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("name", ["demo-fanbeam", "ldct-fanbeam"])
def test_projecting_only_the_support_channels_is_bit_identical(name):
    """Channels whose rays miss the masked image are exactly 0; the kept ones are projected exactly as before."""
    from tomoconsensus.ct.protocol import load_geometry
    from tomoconsensus.tomo.grid import support_channels

    geom = load_geometry(name)
    views = np.arange(0, geom.n_views, geom.n_views // 24)  # 24 views keep this fast
    hu = np.full((geom.image_size, geom.image_size), 60.0, np.float32)  # soft tissue filling the grid
    mu = hu_to_mu(to_geometry_grid(hu, geom.pixel_size_mm, geom), MU_WATER)  # masked to the scan circle
    n = support_channels(geom)
    edge = (geom.n_detectors - n) // 2
    with AstraProjector(geom, views, kind="strip") as full, \
            AstraProjector(dataclasses.replace(geom, n_detectors=n), views, kind="strip") as crop:
        reference, part = full.forward(mu), crop.forward(mu)
    assert n < geom.n_detectors or name == "demo-fanbeam"
    np.testing.assert_array_equal(np.pad(part, ((0, 0), (edge, edge))), reference)
    assert part[:, [0, -1]].max() == 0 and part.max() > 0  # the margin channels are empty, the rest not

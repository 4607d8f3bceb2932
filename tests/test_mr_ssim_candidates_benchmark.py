"""benchmarks/mr_ssim_candidates.py: the one-half priors of the held-out criterion see only their half's data."""

import numpy as np
import pytest
import torch

from tests.benchmark_module import benchmark_module


@pytest.fixture(scope="module")
def candidates():
    with benchmark_module("mr_ssim_candidates.py", "mr_ssim_candidates") as module:
        yield module


def _arrays(rng, n=16, coils=3):
    maps = rng.normal(size=(coils, n, n)) + 1j * rng.normal(size=(coils, n, n))
    maps /= np.sqrt(np.sum(np.abs(maps) ** 2, axis=0, keepdims=True))
    kspace = (rng.normal(size=(coils, n, n)) + 1j * rng.normal(size=(coils, n, n))).astype(np.complex64)
    half1, half2 = np.zeros(n, bool), np.zeros(n, bool)
    half1[[2, 6, 7, 8, 9, 12]], half2[[4, 7, 8, 9, 14]] = True, True
    return {"kspace": kspace[None], "maps": maps.astype(np.complex64)[None], "half1": half1[None],
            "half2": half2[None], "scale": np.array([2.0])}


def test_half_sense_uses_only_its_own_lines(candidates):
    rng = np.random.default_rng(0)
    arrays = _arrays(rng)
    before = candidates.half_sense(arrays, "half1", 0.01)
    other = arrays["half2"][0] & ~arrays["half1"][0]
    changed = {**arrays, "kspace": arrays["kspace"].copy()}
    changed["kspace"][0][:, other] *= 5.0  # the other half's own lines: must not matter
    np.testing.assert_allclose(candidates.half_sense(changed, "half1", 0.01), before, atol=1e-6)
    changed["kspace"][0][:, arrays["half1"][0]] *= 5.0  # its own lines: must matter
    assert np.abs(candidates.half_sense(changed, "half1", 0.01) - before).max() > 0.1


def test_priors_take_one_half_each(candidates):
    """z: f1(x1), f2(x2); mean: both networks on one half; a change of x2 leaves the half-1 priors alone."""
    f1, f2 = torch.nn.Conv2d(2, 2, 1), torch.nn.Conv2d(2, 2, 1)
    rng = np.random.default_rng(1)
    data = type("D", (), {"x1": rng.normal(size=(1, 2, 4, 4)).astype(np.float32),
                          "x2": rng.normal(size=(1, 2, 4, 4)).astype(np.float32)})()
    models = {"f1": f1, "f2": f2}
    for variant in ("z", "mean"):
        p1, p2 = candidates.priors(variant, models, data, {})
        data.x2 = data.x2 + 1.0
        q1, q2 = candidates.priors(variant, models, data, {})
        np.testing.assert_array_equal(p1, q1)
        assert np.abs(q2 - p2).max() > 1e-3
    with torch.no_grad():
        np.testing.assert_allclose(candidates.priors("z", models, data, {})[0], f1(torch.from_numpy(data.x1)).numpy())

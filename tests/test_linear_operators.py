"""Property checks shared by every linear operator of the package (in the manner of SigPy's
``tests/test_linop.py``): linearity, and for projector pairs the adjoint identity
<A x, y> = <x, A^T y>, over input dtypes and, where the operator runs on torch, devices.

Add a new modality's operators to ``LINEAR`` / ``ADJOINT_PAIRS``; the checks are the same.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tomoconsensus.ct.protocol import load_geometry
from tomoconsensus.pet.recon import CorrectedFBP, pet_geometry
from tomoconsensus.tomo.curved import CurvedFBP, CurvedProjector
from tomoconsensus.tomo.fbp import FBP
from tomoconsensus.tomo.projector import AstraProjector

DTYPES = [np.float32, np.float64]


def flat():
    return load_geometry("demo-fanbeam")


def curved():
    return dataclasses.replace(flat(), detector_shape="curved", detector_pitch_mm=4.9)


def pet():
    return pet_geometry(np.arange(0, 180, 2.0), 96, 4.0, 64, 4.0)


def odd(geom):
    return np.arange(1, geom.n_views, 2)


#: name -> (operator factory(device), input shape factory)
LINEAR = {
    "flat FBP, all views": (lambda dev: FBP(flat(), device=dev), lambda: (flat().n_views, flat().n_detectors)),
    "flat FBP, odd views": (lambda dev: FBP(flat(), odd(flat()), device=dev),
                            lambda: (len(odd(flat())), flat().n_detectors)),
    "flat FBP, torch loop": (lambda dev: FBP(flat(), device=dev, backend="torch"),
                             lambda: (flat().n_views, flat().n_detectors)),
    "curved FBP, odd views": (lambda dev: CurvedFBP(curved(), odd(curved()), device=dev),
                              lambda: (len(odd(curved())), curved().n_detectors)),
    "PET corrected FBP": (lambda dev: (lambda y: CorrectedFBP(pet())(y, 1.0, 0.0)),
                          lambda: (pet().n_views, pet().n_detectors)),
}

#: name -> (forward/adjoint object factory, image shape, sinogram shape)
ADJOINT_PAIRS = {
    "ASTRA flat fan beam (strip)": lambda: AstraProjector(flat(), kind="strip"),
    "ASTRA flat fan beam (line)": lambda: AstraProjector(flat(), kind="line"),
    "curved fan beam (Joseph)": lambda: CurvedProjector(curved(), backend="joseph"),
    "curved fan beam (ASTRA, resampled)": lambda: CurvedProjector(curved(), backend="astra", use_cuda=False),
    "PET parallel beam": lambda: AstraProjector(pet(), kind="strip"),
}


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(LINEAR))
def test_operator_is_linear(name, dtype, device):
    if name.startswith("PET") and device != "cpu":
        pytest.skip("NumPy operator")
    make_op, shape = LINEAR[name]
    op = make_op(device)
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal(shape()).astype(dtype) for _ in range(2))
    a, b = 0.7, -1.3
    lhs = _numpy(op(a * x + b * y))
    rhs = a * _numpy(op(x)) + b * _numpy(op(y))
    scale = np.abs(rhs).max()
    assert scale > 0
    assert np.abs(lhs - rhs).max() <= 1e-5 * scale


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ADJOINT_PAIRS))
def test_adjoint_identity(name, dtype):
    rng = np.random.default_rng(1)
    with ADJOINT_PAIRS[name]() as op:
        n = op.geom.image_size
        x = rng.standard_normal((n, n)).astype(dtype)
        ax = np.asarray(op.forward(x), np.float64)
        y = rng.standard_normal(ax.shape).astype(dtype)
        aty = np.asarray(op.adjoint(y), np.float64)
    lhs, rhs = float(np.vdot(ax, y)), float(np.vdot(x.astype(np.float64), aty))
    assert abs(lhs - rhs) <= 1e-4 * max(abs(lhs), abs(rhs))

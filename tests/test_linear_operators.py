"""One property table over every linear operator of the package (tomoconsensus.tomo.linop.Linop), in the
manner of SigPy's ``tests/test_linop.py`` and deepinv's physics tests.

For each registered operator, on each device of the ``device`` fixture (the CPU; CUDA where present and the
operator has a GPU back end), for float32 and float64 inputs (complex64 and complex128 for MR):

* shapes and dtype: ``forward`` maps ``ishape`` to ``oshape`` and returns ``op.dtype``, ``adjoint`` back;
* linearity: ``A(a x + b y) = a A x + b A y``;
* the adjoint identity ``<A x, y> = <x, A^H y>``, where the adjoint exists; FBPs raise NotImplementedError;
* NumPy and torch inputs give the same numbers, each returned as its own type.

Tolerances follow the dtype the operator computes in (``op.dtype``); for linearity, the coarser of it and the
input's (``a x + b y`` is rounded to the input dtype). Add a new
operator to ``OPERATORS``: ``test_every_operator_class_is_in_the_table`` fails until it is there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pytest
import torch

from tomoconsensus.ct.protocol import load_geometry
from tomoconsensus.mr.operator import MRForward
from tomoconsensus.pet.recon import CorrectedFBP, pet_geometry
from tomoconsensus.tomo.backends import cuda_available
from tomoconsensus.tomo.curved import CurvedFBP, CurvedProjector
from tomoconsensus.tomo.fbp import FBP
from tomoconsensus.tomo.linop import Linop, operator_classes
from tomoconsensus.tomo.projector import AstraProjector
from tomoconsensus.tomo.tv import Gradient

#: relative tolerance of the adjoint identity and of linearity, by the dtype the operator computes in
#: (float32 round-off accumulated over ~1e4-term sums; float64 the same at 1e-16 per operation). Measured
#: adjoint errors on the CPU: ASTRA 2e-7 .. 9.4e-7, curved ASTRA resampled 7.8e-6, Joseph 1.1e-7, TV gradient
#: 1.3e-7 (float32) / 8.2e-15 (float64), MR 1.5e-7 (complex64) / 1.1e-15 (complex128).
TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10,
             np.dtype(np.complex64): 1e-4, np.dtype(np.complex128): 1e-10}


def flat():
    return load_geometry("demo-fanbeam")


def curved():
    return dataclasses.replace(flat(), detector_shape="curved", detector_pitch_mm=4.9)


def pet():
    return pet_geometry(np.arange(0, 180, 2.0), 96, 4.0, 64, 4.0)


def odd(geom):
    return np.arange(1, geom.n_views, 2)


def mr_forward(dtype, device: str) -> MRForward:
    """8 coils of smooth complex sensitivities on a 48 x 40 grid, every other line and the centre acquired."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[-1:1:48j, -1:1:40j]
    maps = np.stack([np.exp(-((y - np.cos(c)) ** 2 + (x - np.sin(c)) ** 2)) * np.exp(1j * (c + x * y))
                     for c in np.linspace(0, 2 * np.pi, 8, endpoint=False)])
    lines = (np.arange(48) % 2 == 0) | (np.abs(np.arange(48) - 24) < 4) | (rng.random(48) < 0.1)
    return MRForward(maps, lines, dtype, -1 if device == "cpu" else 0)


@dataclass(frozen=True)
class Case:
    """``make(device)`` builds the operator; ``gpu`` names its GPU back end ("" for a CPU-only operator);
    ``adjoint`` False for an FBP (a reconstruction: its adjoint must raise NotImplementedError)."""

    make: Any
    gpu: str = ""
    complex: bool = False
    adjoint: bool = True


def _astra(geom, kind, device):
    return AstraProjector(geom(), kind=kind, use_cuda=device == "cuda")


def _curved(backend, device):
    return CurvedProjector(curved(), backend=backend, use_cuda=device == "cuda")


OPERATORS = {
    "flat FBP, all views": Case(lambda dev: FBP(flat(), device=dev), "torch", adjoint=False),
    "flat FBP, odd views": Case(lambda dev: FBP(flat(), odd(flat()), device=dev), "torch", adjoint=False),
    "flat FBP, torch loop": Case(lambda dev: FBP(flat(), device=dev, backend="torch"), "torch", adjoint=False),
    "parallel FBP (PET geometry)": Case(lambda dev: FBP(pet(), device=dev), "torch", adjoint=False),
    "curved FBP, odd views": Case(lambda dev: CurvedFBP(curved(), odd(curved()), device=dev), "torch", adjoint=False),
    "PET corrected FBP": Case(lambda dev: CorrectedFBP(pet()), adjoint=False),
    "ASTRA flat fan beam (strip; CUDA on a GPU)": Case(partial(_astra, flat, "strip"), "astra"),
    "ASTRA flat fan beam (line)": Case(partial(_astra, flat, "line")),
    "ASTRA parallel beam, PET (strip; CUDA on a GPU)": Case(partial(_astra, pet, "strip"), "astra"),
    "ASTRA parallel beam, PET (line)": Case(partial(_astra, pet, "line")),
    "curved fan beam (Joseph)": Case(partial(_curved, "joseph")),
    "curved fan beam (ASTRA, resampled)": Case(partial(_curved, "astra"), "astra"),
    "TV gradient, float32": Case(lambda dev: Gradient((31, 23), np.float32)),
    "TV gradient, float64": Case(lambda dev: Gradient((31, 23), np.float64)),
    "MR A = M F S, complex64": Case(partial(mr_forward, np.complex64), "sigpy", complex=True),
    "MR A = M F S, complex128": Case(partial(mr_forward, np.complex128), "sigpy", complex=True),
}


def _gpu_ready(kind: str) -> bool:
    if kind == "torch":
        return torch.cuda.is_available()
    if kind == "astra":
        return cuda_available()
    if kind == "sigpy":
        import sigpy as sp

        return bool(sp.config.cupy_enabled)
    return False


def _build(name: str, device: str):
    """(operator, input dtypes) for one table entry on ``device``; closed after the test."""
    entry = OPERATORS[name]
    if device == "cuda" and not _gpu_ready(entry.gpu):
        pytest.skip(f"{name}: no GPU back end here ({entry.gpu or 'CPU only'})")
    op = entry.make(device)
    assert op.has_adjoint == entry.adjoint
    yield op, ((np.complex64, np.complex128) if entry.complex else (np.float32, np.float64))
    if hasattr(op, "close"):
        op.close()


@pytest.fixture(params=list(OPERATORS))
def case(request, device):
    yield from _build(request.param, device)


@pytest.fixture(params=[name for name, entry in OPERATORS.items() if entry.adjoint])
def pair(request, device):
    yield from _build(request.param, device)


def _random(shape, dtype, rng) -> np.ndarray:
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def _dot(a, b) -> complex:
    return complex(np.vdot(np.asarray(a, np.complex128), np.asarray(b, np.complex128)))


def test_shapes_dtype_and_device(case, device):
    op, dtypes = case
    assert isinstance(op, Linop)
    assert str(op.device).partition(":")[0] == device
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        ax = op.forward(_random(op.ishape, dtype, rng))
        assert isinstance(ax, np.ndarray) and ax.shape == op.oshape and ax.dtype == op.dtype
        if op.has_adjoint:
            aty = op.adjoint(_random(op.oshape, dtype, rng))
            assert isinstance(aty, np.ndarray) and aty.shape == op.ishape and aty.dtype == op.dtype
        else:
            with pytest.raises(NotImplementedError, match=type(op).__name__):
                op.adjoint(_random(op.oshape, dtype, rng))


def test_linearity(case):
    op, dtypes = case
    rng = np.random.default_rng(1)
    a, b = (0.7 - 0.2j, -1.3 + 0.5j) if dtypes[0] == np.complex64 else (0.7, -1.3)
    for dtype in dtypes:
        x, y = (_random(op.ishape, dtype, rng) for _ in range(2))
        lhs = op.forward((a * x + b * y).astype(dtype))
        rhs = a * op.forward(x).astype(np.complex128) + b * op.forward(y).astype(np.complex128)
        scale = np.abs(rhs).max()
        assert scale > 0
        # a x + b y is rounded to the input dtype before A sees it: the coarser of the two dtypes counts
        assert np.abs(lhs - rhs).max() <= max(TOLERANCE[op.dtype], TOLERANCE[np.dtype(dtype)]) / 10 * scale


def test_adjoint_identity(pair):
    op, dtypes = pair
    rng = np.random.default_rng(2)
    for dtype in dtypes:
        x, y = _random(op.ishape, dtype, rng), _random(op.oshape, dtype, rng)
        lhs, rhs = _dot(op.forward(x), y), _dot(x, op.adjoint(y))
        assert abs(lhs - rhs) <= TOLERANCE[op.dtype] * max(abs(lhs), abs(rhs))


def test_numpy_and_torch_inputs_agree(case):
    op, dtypes = case
    rng = np.random.default_rng(4)
    x = _random(op.ishape, dtypes[0], rng)
    out = op.forward(torch.from_numpy(x))
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == op.oshape
    np.testing.assert_allclose(out.cpu().numpy(), op.forward(x), rtol=1e-6, atol=1e-6 * np.abs(op.forward(x)).max())


def test_every_operator_class_is_in_the_table():
    """Every Linop subclass of the imported package modules has at least one entry above."""
    import tomoconsensus.mr.operator
    import tomoconsensus.pet.recon
    import tomoconsensus.tomo.curved
    import tomoconsensus.tomo.tv  # noqa: F401

    tabled = set()
    for entry in OPERATORS.values():
        op = entry.make("cpu")
        tabled.add(type(op))
        if hasattr(op, "close"):
            op.close()
    assert set(operator_classes()) <= tabled, sorted(c.__name__ for c in set(operator_classes()) - tabled)
    assert len(operator_classes()) >= 7

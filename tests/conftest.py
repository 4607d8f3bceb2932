"""Shared fixtures: small geometries, analytic phantoms and shipped data paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tomoconsensus.geometry import load_geometry

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MU_WATER = 0.0193


@pytest.fixture(scope="session")
def demo_geometry():
    """128^2 grid, 360 views, LDCT distances and fan angle."""
    return load_geometry("demo-fanbeam")


def disk(geom, radius_mm: float, value: float = MU_WATER, centre=(0.0, 0.0)) -> np.ndarray:
    """Analytic disk phantom (N, N) in 1/mm."""
    x, y = geom.pixel_centres_mm()
    inside = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 < radius_mm**2
    return np.where(inside, value, 0.0).astype(np.float32)


@pytest.fixture
def water_cylinder(demo_geometry):
    """Water cylinder of 240 mm diameter on air, 1/mm."""
    return disk(demo_geometry, 120.0)


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)

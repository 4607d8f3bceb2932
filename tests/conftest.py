"""Shared fixtures: small geometries, analytic phantoms and shipped data paths."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from tomoconsensus.ct.protocol import load_geometry

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MU_WATER = 0.0193


@pytest.fixture(scope="session")
def demo_geometry():
    """128^2 grid, 360 views, LDCT distances and fan angle."""
    return load_geometry("demo-fanbeam")


def disk(geom, radius_mm: float, value: float = MU_WATER, centre=(0.0, 0.0)) -> np.ndarray:
    """Analytic disk phantom (N, N) in 1/mm."""
    x, y = geom.pixel_centers_mm()
    inside = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 < radius_mm**2
    return np.where(inside, value, 0.0).astype(np.float32)


@pytest.fixture
def water_cylinder(demo_geometry):
    """Water cylinder of 240 mm diameter on air, 1/mm."""
    return disk(demo_geometry, 120.0)


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)


EMBEDDED_CT = Path(__file__).resolve().parents[1] / "tomoconsensus" / "embedded" / "tcia_covid19_ny_sbu_axial_hu.npz"


@pytest.fixture(scope="session")
def prepared_ct(tmp_path_factory, demo_geometry):
    """A small prepared CT dataset: 4 embedded clinical slices at quarter dose, 128^2."""
    from tomoconsensus.ct.io import read_images
    from tomoconsensus.ct.modality import CTModality
    from tomoconsensus.ct.sources import simulated_slices
    from tomoconsensus.data.prepared import write_prepared

    out = tmp_path_factory.mktemp("prepared") / "ct4.h5"
    stack = read_images(EMBEDDED_CT)
    write_prepared(out, CTModality(demo_geometry), islice(simulated_slices(stack, demo_geometry, 0.25, 0), 4), 4, 0,
                   progress=False)
    return out


@pytest.fixture(scope="session")
def prepared_ct_val(tmp_path_factory, prepared_ct):
    """``prepared_ct`` as another patient's data (patient ids prefixed ``val-``): a validation file that
    shares no patient with the training file, as ``train --val`` requires."""
    import shutil

    import h5py

    out = tmp_path_factory.mktemp("prepared_val") / "ct4_val.h5"
    shutil.copy(prepared_ct, out)
    with h5py.File(out, "r+") as f:
        ids = [("val-" + (p.decode() if isinstance(p, bytes) else str(p))) for p in f["patient_id"][()]]
        del f["patient_id"]
        f.create_dataset("patient_id", data=ids, dtype=h5py.string_dtype("utf-8"))
    return out


def tiny_config(**overrides):
    """A UNet and protocol small enough to train a few steps in well under a second on a CPU."""
    from tomoconsensus.learn.config import TrainConfig

    values = dict(base_features=4, depth=2, patch_size=32, batch_size=4, patches_per_slice=4, epochs=2,
                  log_every_steps=1, checkpoint_every_steps=2, device="cpu")
    values.update(overrides)
    return TrainConfig(**values)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(params=DEVICES)
def device(request):
    """Each test that takes ``device`` runs on the CPU and, marked ``gpu``, on CUDA when present."""
    if request.param == "cuda":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("no CUDA device")
    return request.param

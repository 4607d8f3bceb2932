import h5py
import numpy as np
import pytest
import torch

from tomoconsensus.ct.io import read_images
from tomoconsensus.ct.modality import CTModality
from tomoconsensus.ct.protocol import geometry_from_toml_text
from tomoconsensus.ct.sources import simulated_slices
from tomoconsensus.data.patches import PatchSampler, extract_patches
from tomoconsensus.data.prepared import read_prepared, write_prepared
from tomoconsensus.errors import InputError

from tests.conftest import DATA


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, demo_geometry):
    out = tmp_path_factory.mktemp("prep") / "ct.h5"
    stack = read_images(DATA / "ct" / "dicom")
    write_prepared(out, CTModality(demo_geometry), simulated_slices(stack, demo_geometry, 0.25, 7), 2, 7,
                   {"dose_fraction": 0.25}, progress=False)
    return out


def test_prepared_file_is_self_describing(prepared, demo_geometry):
    data = read_prepared(prepared)
    assert data.x1.shape == data.x2.shape == data.x_est.shape == data.reference.shape == (2, 1, 128, 128)
    assert data.attrs["modality"] == "ct" and data.attrs["units"] == "HU/1000"
    assert data.attrs["dose_fraction"] == 0.25 and data.attrs["seed"] == 7
    assert geometry_from_toml_text(data.attrs["geometry_toml"]) == demo_geometry
    assert data.slice_ids[0].startswith("A002304")
    # HU/1000: air ~ -1 (noiseless FBP reference: within a few HU), noise of x_est a few 10 HU
    air = data.reference < -0.9
    assert np.median(data.reference[air]) == pytest.approx(-1.0, abs=0.01)
    assert 0.002 < np.sqrt(np.mean((data.x_est - data.reference) ** 2)) < 0.1


def test_reference_modes(tmp_path, demo_geometry):
    from tomoconsensus.ct.sources import simulated_slices
    stack = read_images(DATA / "ct" / "dicom")
    refs = {mode: next(simulated_slices(stack, demo_geometry, 0.25, 3, mode)).reference for mode in
            ("noiseless-fbp", "full-dose-fbp", "image")}
    image_min = refs["image"].min()
    assert image_min == pytest.approx(-1.0, abs=1e-6)  # the resampled clean image, air exactly -1000 HU
    noise = np.std(refs["full-dose-fbp"] - refs["noiseless-fbp"]) * 1000
    assert 1.0 < noise < 50.0  # full-dose FBP = noiseless FBP + full-dose noise (HU)


def test_preparation_is_reproducible(prepared, tmp_path, demo_geometry):
    again = tmp_path / "again.h5"
    stack = read_images(DATA / "ct" / "dicom")
    write_prepared(again, CTModality(demo_geometry), simulated_slices(stack, demo_geometry, 0.25, 7), 2, 7,
                   progress=False)
    np.testing.assert_array_equal(read_prepared(again).x1, read_prepared(prepared).x1)


def test_failed_preparation_leaves_no_output(tmp_path, demo_geometry):
    out = tmp_path / "never.h5"

    def broken_slices():
        stack = read_images(DATA / "ct" / "dicom")
        yield next(simulated_slices(stack, demo_geometry, 0.25, 0))
        raise KeyboardInterrupt  # an interrupted run

    with pytest.raises(KeyboardInterrupt):
        write_prepared(out, CTModality(demo_geometry), broken_slices(), 2, 0, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_reader_rejects_foreign_or_corrupt_files(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x1"] = np.zeros((1, 1, 4, 4))
    with pytest.raises(InputError, match="foreign.h5.*format"):
        read_prepared(foreign)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"garbage")
    with pytest.raises(InputError, match="corrupt.h5"):
        read_prepared(corrupt)


def test_patch_sampler_is_a_function_of_seed_and_epoch():
    sampler = PatchSampler(3, 64, 80, patch_size=32, patches_per_slice=8, batch_size=4, seed=5)
    a, b = sampler.epoch_coordinates(2), sampler.epoch_coordinates(2)
    assert a.shape == (6, 4, 3)
    assert torch.equal(a, b) and not torch.equal(a, sampler.epoch_coordinates(3))
    flat = a.reshape(-1, 3)
    assert torch.bincount(flat[:, 0]).tolist() == [8, 8, 8]  # 8 patches from every slice
    assert flat[:, 1].max() <= 64 - 32 and flat[:, 2].max() <= 80 - 32


def test_patches_share_location_across_images():
    stack = torch.arange(2 * 2 * 10 * 12, dtype=torch.float32).reshape(2, 2, 10, 12)
    coords = torch.tensor([[1, 2, 3], [0, 0, 0]])
    patches = extract_patches(stack, coords, 4)
    assert patches.shape == (2, 2, 4, 4)
    assert torch.equal(patches[0], stack[1, :, 2:6, 3:7])
    assert torch.equal(patches[1], stack[0, :, 0:4, 0:4])


import h5py
import numpy as np
import pydicom
import pytest

from tomoconsensus.ct.io import read_dicom_folder, read_image_array, read_images, read_sinograms
from tomoconsensus.errors import GeometryMismatchError, InputError

from tests.conftest import DATA

DICOM = DATA / "ct" / "dicom"


def test_dicom_folder_gives_hu_sorted_by_patient():
    stack = read_dicom_folder(DICOM)
    assert stack.hu.shape == (2, 512, 512)
    assert stack.patient_ids == sorted(stack.patient_ids)
    ds = pydicom.dcmread(next(DICOM.glob("A002304*")))
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(stack.hu[0], expected)
    assert stack.pixel_spacing_mm[0] == pytest.approx(float(ds.PixelSpacing[0]))
    assert -3100 < stack.hu.min() and stack.hu.max() < 3100


def _copy_dicom(tmp_path, mutate):
    src = next(DICOM.glob("A002304*"))
    ds = pydicom.dcmread(src)
    mutate(ds)
    out = tmp_path / "bad.dcm"
    ds.save_as(out)
    return out


def test_dicom_without_rescale_or_pixels_is_named(tmp_path):
    no_slope = _copy_dicom(tmp_path, lambda ds: delattr(ds, "RescaleSlope"))
    with pytest.raises(InputError, match="bad.dcm.*RescaleSlope"):
        read_images(no_slope)
    no_pixels = _copy_dicom(tmp_path, lambda ds: delattr(ds, "PixelData"))
    with pytest.raises(InputError, match="PixelData"):
        read_images(no_pixels)


def test_corrupt_dicom_is_named(tmp_path):
    bad = tmp_path / "corrupt.dcm"
    bad.write_bytes(b"not a dicom at all" * 10)
    with pytest.raises(InputError, match="corrupt.dcm.*DICOM"):
        read_images(bad)
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(next(DICOM.glob("A002304*")).read_bytes()[:200_000])
    with pytest.raises(InputError, match="truncated.dcm"):
        read_images(truncated)


def test_npz_stack_and_errors(tmp_path):
    good = tmp_path / "s.npz"
    np.savez(good, hu=np.zeros((3, 64, 64)), pixel_spacing_mm=np.full((3, 2), 0.8))
    stack = read_image_array(good)
    assert stack.hu.shape == (3, 64, 64) and stack.pixel_spacing_mm[0] == 0.8
    np.save(tmp_path / "rect.npy", np.zeros((2, 64, 32)))
    with pytest.raises(InputError, match="square"):
        read_image_array(tmp_path / "rect.npy", 1.0)
    nan = np.zeros((1, 8, 8))
    nan[0, 1, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(InputError, match="nan.npy.*finite"):
        read_image_array(tmp_path / "nan.npy", 1.0)
    np.save(tmp_path / "nospacing.npy", np.zeros((1, 8, 8)))
    with pytest.raises(InputError, match="pixel_spacing_mm"):
        read_image_array(tmp_path / "nospacing.npy")


def _sino_file(tmp_path, **datasets):
    path = tmp_path / "sino.h5"
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f[key] = value
    return path


def test_sinogram_reader_validates_against_geometry(tmp_path, demo_geometry):
    shape = (2,) + demo_geometry.sinogram_shape
    stack = read_sinograms(_sino_file(tmp_path, sinograms=np.ones(shape, np.float32)), demo_geometry)
    assert stack.sinograms.shape == shape and stack.slice_ids == ["slice0000", "slice0001"]
    with pytest.raises(GeometryMismatchError, match="sino.h5.*sinograms.*360, 184"):
        read_sinograms(_sino_file(tmp_path, sinograms=np.ones((2, 359, 184))), demo_geometry)
    bad = np.ones(shape)
    bad[1, 5, 5] = np.inf
    with pytest.raises(InputError, match="finite"):
        read_sinograms(_sino_file(tmp_path, sinograms=bad), demo_geometry)


def test_counts_are_log_transformed_and_negative_counts_rejected(tmp_path, demo_geometry):
    shape = (1,) + demo_geometry.sinogram_shape
    counts = np.full(shape, 1000.0 * np.exp(-2.0))
    stack = read_sinograms(_sino_file(tmp_path, counts=counts, i0=1000.0), demo_geometry)
    np.testing.assert_allclose(stack.sinograms, 2.0, rtol=1e-6)
    counts[0, 0, 0] = -5
    with pytest.raises(InputError, match="counts.*non-negative"):
        read_sinograms(_sino_file(tmp_path, counts=counts, i0=1000.0), demo_geometry)
    with pytest.raises(InputError, match="i0"):
        read_sinograms(_sino_file(tmp_path, counts=np.abs(counts)), demo_geometry)


def test_corrupt_hdf5_is_named(tmp_path, demo_geometry):
    path = tmp_path / "broken.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 50)
    with pytest.raises(InputError, match="broken.h5.*HDF5"):
        read_sinograms(path, demo_geometry)


def test_npz_slice_ids_keep_dots_and_drop_only_image_suffixes(tmp_path):
    """UID-like patient ids and decimal table positions survive; '.dcm' file names lose the suffix."""
    hu = np.zeros((3, 8, 8), dtype=np.int16)
    files = np.array(["1.3.6.1.4.1.9328.50.1.0117_z-12.5", "1.3.6.1.4.1.9328.50.1.0117_z-15.0",
                      "A002304_19001231-076.dcm"])
    path = tmp_path / "s.npz"
    np.savez(path, hu=hu, pixel_spacing_mm=np.ones(3), files=files)
    stack = read_images(path)
    assert stack.slice_ids == ["1.3.6.1.4.1.9328.50.1.0117_z-12.5", "1.3.6.1.4.1.9328.50.1.0117_z-15.0",
                               "A002304_19001231-076"]
    assert stack.patient_ids == ["1.3.6.1.4.1.9328.50.1.0117"] * 2 + ["A002304"]

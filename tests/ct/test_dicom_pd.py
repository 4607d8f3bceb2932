"""DICOM-CT-PD raw projections: reader, rebinning, flying focal spot, splits, dose, CLI, bad input.

Every scan is written by tests/ct/dicom_pd_writer.py from exact line integrals of an analytic
phantom (water cylinder r = 100 mm with +1000 HU and -100 HU inserts, a +500 HU sphere at
z = 110 mm), 96 channels x 8 rows, 192 views per rotation, 3 rotations, 7 mm feed per rotation.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pydicom
import pytest

from tomoconsensus.cli import main
from tomoconsensus.ct.dicom_pd import read_projections
from tomoconsensus.ct.modality import CTModality
from tomoconsensus.ct.raw import parse_z_list
from tomoconsensus.ct.rebin import Rebinner, split_views
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.errors import InputError
from tomoconsensus.tomo.curved import CurvedFBP

from tests.ct.dicom_pd_writer import ScanSpec, simulate, water_phantom, write_scan

MU = 0.0193
Z_SPHERE = 110.0
GRID = {"image_size": 128, "pixel_size_mm": 3.0}


@pytest.fixture(scope="module")
def phantom():
    return water_phantom(Z_SPHERE)


@pytest.fixture(scope="module")
def scans(tmp_path_factory, phantom):
    """Folders of synthetic scans: noiseless with each FFS mode, and a noisy full-dose one."""
    root = tmp_path_factory.mktemp("dicom_pd")
    out = {}
    for ffs in ("FFSNONE", "FFSZ", "FFSXY"):
        out[ffs] = write_scan(root / ffs, ScanSpec(ffs=ffs), phantom)
    out["noisy"] = write_scan(root / "noisy", ScanSpec(incident_photons=2e5, seed=3), phantom)
    return out


def hu_image(rebinner: Rebinner, z: float, views=None) -> np.ndarray:
    geom, sources = rebinner.geometry.geom, rebinner.geometry.sources
    image = CurvedFBP(geom, views, sources=sources)(rebinner(z, views)).numpy()
    return image / rebinner.scan.mu_water_per_mm * 1000 - 1000


def rois(geom) -> dict[str, np.ndarray]:
    x, y = geom.pixel_centers_mm()

    def disk(cx, cy, r):
        return (x - cx) ** 2 + (y - cy) ** 2 < r**2

    return {"water": disk(-20, 10, 15) | disk(10, -60, 15), "bone": disk(45, 20, 12), "fat": disk(-40, -35, 8),
            "sphere": disk(-30, 45, 6), "noise": disk(0, 0, 80) & ~disk(45, 20, 26) & ~disk(-40, -35, 28)
            & ~disk(-30, 45, 18)}


# ---------------------------------------------------------------- reader


def test_reader_decodes_implicit_and_explicit_vr_and_both_pixel_layouts(tmp_path, phantom):
    small = {"n_channels": 24, "n_rows": 4, "views_per_turn": 32, "n_turns": 1.25, "ffs": "FFSZ"}
    implicit = read_projections(write_scan(tmp_path / "a", ScanSpec(**small), phantom), progress=False)
    explicit = read_projections(write_scan(tmp_path / "b", ScanSpec(**small, syntax="explicit", tcia_layout=False,
                                                                     water_tag_per_cm=True, swap_shift_tags=True),
                                           phantom), progress=False)
    assert pydicom.dcmread(next((tmp_path / "a").iterdir())).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    exact = simulate(ScanSpec(**small), phantom)
    for scan in (implicit, explicit):
        assert scan.raw.shape == (40, 4, 24)
        p = scan.raw * scan.slope[:, None, None] + scan.intercept[:, None, None]
        # files are named in random order: sorted by InstanceNumber, the data are the acquisition's
        assert np.abs(p - exact).max() < 1e-4 * exact.max()
        assert np.allclose(np.diff(scan.phi_rad), 2 * np.pi / 32)
        assert scan.mu_water_per_mm == pytest.approx(MU)  # 0.193 /cm read as 0.0193 /mm
        assert (scan.ffs_mode, scan.views_per_rotation, scan.central_channel) == ("FFSZ", 32, 12.5)
        assert scan.d0_mm == pytest.approx(1085.6) and scan.rho_mm == pytest.approx(595.0)
        assert np.allclose(scan.shift_z_mm, np.arange(40) % 2) and np.all(scan.shift_phi_rad == 0)
    assert explicit.notes and "swapped" in explicit.notes[0] and not implicit.notes


def test_z_list_parsing():
    assert parse_z_list("120,130") == [120.0, 130.0]
    assert parse_z_list("100:110:5") == [100.0, 105.0, 110.0]
    assert parse_z_list("all:5", (102.3, 117.9)) == [103.0, 108.0, 113.0]
    with pytest.raises(InputError, match="start:stop:step"):
        parse_z_list("100:90:5")


# ---------------------------------------------------------------- image quality


def test_hu_in_uniform_regions_and_inserts(scans):
    rebin = Rebinner(read_projections(scans["FFSNONE"], progress=False), **GRID)
    image = hu_image(rebin, 104.0)  # 6 mm below the sphere's edge... inside its z extent: r(z) = 6.6 mm
    roi = rois(rebin.geometry.geom)
    assert abs(image[roi["water"]].mean()) < 10  # measured -0.8
    assert abs(image[roi["bone"]].mean() - 1000) < 30  # measured 989
    assert abs(image[roi["fat"]].mean() + 100) < 30  # measured -100.5


def test_decreasing_angles_reconstruct_the_same_image(tmp_path, scans, phantom):
    """A scanner turning the other way: same phantom, same table positions, same image."""
    plain = Rebinner(read_projections(scans["FFSNONE"], progress=False), **GRID)
    turned = Rebinner(read_projections(write_scan(tmp_path / "cw", ScanSpec(rotation_sign=-1), phantom),
                                       progress=False), **GRID)
    a, b = hu_image(plain, 110.0), hu_image(turned, 110.0)
    x, y = plain.geometry.geom.pixel_centers_mm()
    inside = x**2 + y**2 < 105**2
    assert np.sqrt(np.mean((a - b)[inside] ** 2)) < 3  # HU; the views sample other angles


def test_z_varying_sphere_appears_at_its_table_position(scans):
    rebin = Rebinner(read_projections(scans["FFSNONE"], progress=False), **GRID)
    roi = rois(rebin.geometry.geom)["sphere"]
    zs = np.arange(104.0, 117.0, 1.0)
    profile = np.array([hu_image(rebin, z)[roi].mean() for z in zs])
    assert zs[profile.argmax()] == pytest.approx(Z_SPHERE, abs=1.0)
    # symmetric about the centre (same partial volume 4 mm either side), and fading away from it
    left, right = profile[zs == Z_SPHERE - 4][0], profile[zs == Z_SPHERE + 4][0]
    assert abs(left - right) < 15
    assert profile.max() - max(profile[0], profile[-1]) > 30  # measured 43 HU over 6 mm


@pytest.mark.parametrize("ffs", ["FFSZ", "FFSXY"])
def test_flying_focal_spot_modelled_and_ignored(scans, ffs):
    """Modelled: the FFSNONE image's HU; ignored: measurably further from it (rms over the phantom)."""
    plain = Rebinner(read_projections(scans["FFSNONE"], progress=False), **GRID)
    scan = read_projections(scans[ffs], progress=False)
    z = 115.0  # near the sphere's edge, where a z error shows
    target = hu_image(plain, z)
    geom = plain.geometry.geom
    x, y = geom.pixel_centers_mm()
    inside = x**2 + y**2 < 105**2
    rms = {}
    for model in (True, False):
        image = hu_image(Rebinner(scan, **GRID, model_ffs=model), z)
        rms[model] = np.sqrt(np.mean((image - target)[inside] ** 2))
        if model:
            roi = rois(geom)
            assert abs(image[roi["water"]].mean()) < 10
            assert abs(image[roi["bone"]].mean() - 1000) < 30
    # measured rms to FFSNONE: FFSZ 0.10 vs 0.66 HU, FFSXY 4.4 vs 8.9 HU (channel interpolation)
    assert rms[False] > 1.8 * rms[True]


# ---------------------------------------------------------------- splits and noise


def test_split_strategies_partition_and_keep_ffs_positions_in_both_halves():
    for strategy, ffs in (("odd-even", "FFSNONE"), ("ffs-blocks", "FFSXY"), ("random-pairs", "FFSXY"),
                          ("auto", "FFSXYZ")):
        x1, x2, _ = split_views(192, strategy, ffs, seed=4)
        assert len(x1) == len(x2) == 96 and not set(x1) & set(x2) and set(x1) | set(x2) == set(range(192))
    x1, x2, text = split_views(192, "auto", "FFSXY")
    assert list(x2[:4]) == [0, 1, 4, 5] and list(x1[:4]) == [2, 3, 6, 7] and "ffs-blocks" in text
    for half in (x1, x2):  # both focal positions in each half
        assert set(half % 2) == {0, 1}
    odd, _, _ = split_views(192, "odd-even", "FFSXY")
    assert set(odd % 2) == {1}  # why odd/even is not the FFS default


def test_halves_read_disjoint_helical_views(scans):
    """Rebinning a half alone equals selecting its rows; its views only read helical m = k (mod N)."""
    rebin = Rebinner(read_projections(scans["FFSXY"], progress=False), **GRID)
    x1, x2, _ = split_views(192, "auto", "FFSXY")
    full = rebin(110.0)
    assert np.array_equal(rebin(110.0, x1), full[x1])
    used = [set(rebin.chain[:, h].ravel()) - {-1} for h in (x1, x2)]
    assert not used[0] & used[1]


@pytest.fixture(scope="module")
def noise_images(scans):
    """x1, x2, x_est and the noiseless x_est at three table positions, HU."""
    clean = Rebinner(read_projections(scans["FFSNONE"], progress=False), **GRID)
    noisy = Rebinner(read_projections(scans["noisy"], progress=False), **GRID)
    geom, sources = noisy.geometry.geom, noisy.geometry.sources
    x1v, x2v, _ = split_views(geom.n_views, "auto", "FFSNONE")
    ct = CTModality(geom, sources=sources, halves=(x1v, x2v))
    out = {k: [] for k in ("x1", "x2", "x_est", "clean_x1", "clean_x2", "clean_x_est")}
    for z in (106.0, 110.0, 114.0):
        for prefix, sino in (("", noisy(z)), ("clean_", clean(z))):
            h1, h2 = ct.split(sino)
            out[prefix + "x1"].append(ct.reconstruct(h1)[0] * 1000)
            out[prefix + "x2"].append(ct.reconstruct(h2)[0] * 1000)
            out[prefix + "x_est"].append(ct.estimate(sino)[0] * 1000)
    return {k: np.stack(v) for k, v in out.items()}, rois(geom)["noise"]


def test_halves_are_uncorrelated_sqrt2_noisier_and_average_to_x_est(noise_images):
    images, roi = noise_images
    # noise = image - the same reconstruction of the noiseless scan (so view aliasing cancels)
    n1, n2, nf = (images[k][:, roi] - images["clean_" + k][:, roi] for k in ("x1", "x2", "x_est"))
    rho = (n1 * n2).sum() / np.sqrt((n1**2).sum() * (n2**2).sum())
    assert abs(rho) < 0.1
    for half in (n1, n2):
        assert half.std() / nf.std() == pytest.approx(np.sqrt(2), rel=0.15)
    assert np.abs((images["x1"] + images["x2"]) / 2 - images["x_est"]).max() < 0.05  # HU, float32


def test_dose_fraction_quarter_doubles_the_noise(scans):
    """Full-dose scan (I0 = 2e5) -> --dose-fraction 0.25: noise x2; noiseless input gets sqrt(3) x."""
    clean_scan = read_projections(scans["FFSNONE"], progress=False)
    noisy_scan = read_projections(scans["noisy"], progress=False)
    clean = Rebinner(clean_scan, **GRID)
    roi = rois(clean.geometry.geom)["noise"]
    zs = (106.0, 110.0, 114.0)
    truth = [hu_image(clean, z) for z in zs]

    def std(rb):
        return np.std([hu_image(rb, z)[roi] - t[roi] for z, t in zip(zs, truth, strict=True)])

    full = std(Rebinner(noisy_scan, **GRID))
    quarter = std(Rebinner(noisy_scan, **GRID, dose_fraction=0.25, seed=5))
    assert quarter / full == pytest.approx(2.0, rel=0.15)
    clean_scan.photons = noisy_scan.photons  # same I0, no noise of its own
    added = std(Rebinner(clean_scan, **GRID, dose_fraction=0.25, seed=5))
    assert added / full == pytest.approx(np.sqrt(3), rel=0.15)


# ---------------------------------------------------------------- CLI and bad input


def test_cli_writes_prepared_file_with_reference(scans, tmp_path, capsys):
    out = tmp_path / "raw.h5"
    code = main(["prepare", "ct", "--projections", str(scans["FFSXY"]), "--reference-projections",
                 str(scans["FFSNONE"]), "--z-mm", "106:114:4", "--image-size", "128", "--pixel-size-mm", "3",
                 "--out", str(out)])
    assert code == 0 and "3 slices" in capsys.readouterr().out
    data = read_prepared(out)
    assert data.x1.shape == (3, 1, 128, 128) and data.reference is not None
    assert data.slice_ids == ["FFSXY_z106.00", "FFSXY_z110.00", "FFSXY_z114.00"]
    assert data.attrs["ffs_mode"] == "FFSXY" and "ffs-blocks" in data.attrs["split"]
    # what the files said and how they were read
    assert "Table IV" in data.attrs["ffs_shift_tags"] and data.attrs["transfer_syntax"] == "Implicit VR Little Endian"
    flags = json.loads(data.attrs["preprocessing_flags"])
    assert len(flags) == 7 and flags["LogFlag"] == "YES"
    vrs = json.loads(data.attrs["private_tag_vrs"])
    assert vrs["WaterAttenuationCoefficient"].startswith("DS/IS (text") and vrs["NumberofDetectorRows"].startswith("US")
    assert np.abs((data.x1 + data.x2) / 2 - data.x_est).max() < 1e-4
    # the reference is the FFSNONE scan's FBP: within the FFS interpolation difference
    assert np.abs(data.reference - data.x_est)[..., 40:90, 40:90].mean() * 1000 < 5


def _cli_error(args, out, capsys) -> str:
    code = main(["prepare", "ct", *args, "--image-size", "128", "--pixel-size-mm", "3", "--out", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and not out.exists() and len(lines) == 1 and "Traceback" not in err
    return lines[0]


def test_bad_input_is_one_line_exit_2(scans, tmp_path, capsys, phantom):
    out = tmp_path / "x.h5"
    small = {"n_channels": 24, "n_rows": 4, "views_per_turn": 32, "n_turns": 1.25}
    assert "[102.98, 117.98]" in _cli_error(["--projections", str(scans["FFSNONE"]), "--z-mm", "130"], out, capsys)
    folder = write_scan(tmp_path / "trunc", ScanSpec(**small), phantom)
    victim = sorted(folder.iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:-100])
    err = _cli_error(["--projections", str(folder), "--z-mm", "100"], out, capsys)
    assert victim.name in err and "PixelData" in err
    folder = write_scan(tmp_path / "missing", ScanSpec(**small), phantom)
    victim = min(folder.iterdir())
    ds = pydicom.dcmread(victim)
    del ds[0x70311031]
    ds.save_as(victim)
    assert "ConstantRadialDistance (7031,1031)" in _cli_error(["--projections", str(folder), "--z-mm", "100"], out,
                                                              capsys)
    two = tmp_path / "two"
    write_scan(two, ScanSpec(**small), phantom)
    for path in write_scan(tmp_path / "other", ScanSpec(**small, seed=9), phantom).iterdir():
        shutil.copy(path, two / f"other_{path.name}")
    assert "SeriesInstanceUID" in _cli_error(["--projections", str(two), "--z-mm", "100"], out, capsys)
    folder = write_scan(tmp_path / "incons", ScanSpec(**small), phantom)
    victim = sorted(folder.iterdir())[5]
    ds = pydicom.dcmread(victim)
    ds[0x70311031].value = b"\x00\x00\x80\x44"  # 1024.0 instead of 1085.6
    ds.save_as(victim)
    err = _cli_error(["--projections", str(folder), "--z-mm", "100"], out, capsys)
    assert "ConstantRadialDistance" in err and "same value in every file" in err
    axial = write_scan(tmp_path / "axial", ScanSpec(**dict(small, n_turns=0.75), scan_type="AXIAL"), phantom)
    assert "full rotation" in _cli_error(["--projections", str(axial), "--z-mm", "100"], out, capsys)


def test_folder_of_ct_images_suggests_images(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.PixelSpacing, ds.ImagePositionPatient, ds.Rows, ds.Columns = [0.7, 0.7], [0, 0, 0], 2, 2
    ds.BitsAllocated, ds.PixelRepresentation, ds.SamplesPerPixel = 16, 0, 1
    ds.PhotometricInterpretation, ds.PixelData = "MONOCHROME2", bytes(8)
    ds.save_as(folder / "im.dcm", enforce_file_format=True)
    assert "--images" in _cli_error(["--projections", str(folder), "--z-mm", "0"], tmp_path / "y.h5", capsys)


@pytest.mark.slow
def test_finer_scan_with_ffsxy_meets_tighter_hu_bounds(tmp_path, phantom):
    """192 channels x 16 rows, 384 views per rotation, FFSXY, 256^2 grid at 1.5 mm."""
    spec = ScanSpec(n_channels=192, n_rows=16, views_per_turn=384, n_turns=2.5, row_spacing_mm=1.0,
                    feed_mm_per_turn=6.0, ffs="FFSXY")
    rebin = Rebinner(read_projections(write_scan(tmp_path / "fine", spec, phantom), progress=False),
                     image_size=256, pixel_size_mm=1.5)
    lo, hi = rebin.z_range_mm()
    image = hu_image(rebin, (lo + hi) / 2)
    roi = rois(rebin.geometry.geom)
    assert abs(image[roi["water"]].mean()) < 5
    assert abs(image[roi["bone"]].mean() - 1000) < 20
    assert abs(image[roi["fat"]].mean() + 100) < 20

"""DICOM-CT-PD files as scanners and converters write them: every encoding gives the same physics.

The synthetic writer (tests/ct/dicom_pd_writer.py) writes the same exact line integrals of the
phantom of tests/ct/test_dicom_pd.py (water cylinder r = 100 mm, +1000 HU and -100 HU inserts, a
+500 HU sphere at z = 110 mm; 96 channels x 8 rows, 192 views per rotation, 3 rotations) with
implicit or explicit VR, RLE-compressed pixels, and the private tags in the dictionary's VR
(WaterAttenuationCoefficient DS, geometry FL) or another (water FL; geometry as DS/IS text).
Each encoding is checked against ground truth: HU of water, bone, fat and air, the sphere at its
table position, and unbiased, uncorrelated halves (Poisson noise, I0 = 1e6 per channel).
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from tomoconsensus.ct.dicom_pd import read_projections
from tomoconsensus.ct.dicom_pd_tags import decode_private
from tomoconsensus.ct.modality import CTModality
from tomoconsensus.ct.rebin import Rebinner, split_views
from tomoconsensus.errors import InputError
from tomoconsensus.tomo.curved import CurvedFBP

from tests.ct.dicom_pd_writer import TEXT_GEOMETRY, ScanSpec, simulate, water_phantom, write_scan

GRID = {"image_size": 128, "pixel_size_mm": 3.0}
Z_SPHERE = 110.0
I0 = 1e6
ENCODINGS = {
    "implicit-dictionary": {"syntax": "implicit"},
    "implicit-water-FL": {"syntax": "implicit", "vrs": {"WaterAttenuationCoefficient": "FL"}},
    "implicit-text-geometry": {"syntax": "implicit", "vrs": TEXT_GEOMETRY},
    "explicit-dictionary": {"syntax": "explicit"},
    "explicit-text-geometry-water-FL": {"syntax": "explicit",
                                        "vrs": {**TEXT_GEOMETRY, "WaterAttenuationCoefficient": "FL"}},
    "rle": {"syntax": "rle"},
}
#: physics in the default test run: RLE pixels (tests/ct/test_dicom_pd.py checks the dictionary VRs
#: in implicit VR, and test_every_encoding_decodes_to_the_same_scan every encoding, exactly);
#: every encoding with -m slow
FAST = ("rle",)


def _params():
    return [pytest.param(name, marks=() if name in FAST else pytest.mark.slow) for name in ENCODINGS]


@pytest.fixture(scope="module")
def truth():
    """Exact and noisy line integrals (shared by every encoding) and the noiseless images' reader."""
    phantom = water_phantom(Z_SPHERE)
    exact = simulate(ScanSpec(), phantom)
    counts = np.maximum(np.random.default_rng(3).poisson(I0 * np.exp(-exact)), 1)  # as simulate() with I0
    noisy = -np.log(counts / I0)
    return phantom, exact, noisy


@pytest.fixture(scope="module")
def clean_rebinner(tmp_path_factory, truth):
    phantom, exact, _ = truth
    folder = write_scan(tmp_path_factory.mktemp("clean") / "scan", ScanSpec(), phantom, line_integrals_override=exact)
    return Rebinner(read_projections(folder, progress=False), **GRID)


def rois(geom) -> dict[str, np.ndarray]:
    x, y = geom.pixel_centers_mm()

    def disk(cx, cy, r):
        return (x - cx) ** 2 + (y - cy) ** 2 < r**2

    return {"water": disk(-20, 10, 15) | disk(10, -60, 15), "bone": disk(45, 20, 12), "fat": disk(-40, -35, 8),
            "air": disk(0, 150, 20) | disk(-150, 0, 20), "sphere": disk(-30, 45, 6),
            "noise": disk(0, 0, 80) & ~disk(45, 20, 26) & ~disk(-40, -35, 28) & ~disk(-30, 45, 18)}


def hu(rebinner: Rebinner, z: float) -> np.ndarray:
    geom, sources = rebinner.geometry.geom, rebinner.geometry.sources
    return CurvedFBP(geom, sources=sources)(rebinner(z)).numpy() / rebinner.scan.mu_water_per_mm * 1000 - 1000


def _halves(rebinner: Rebinner, z: float) -> dict[str, np.ndarray]:
    geom, sources = rebinner.geometry.geom, rebinner.geometry.sources
    ct = CTModality(geom, sources=sources, halves=split_views(geom.n_views, "auto", "FFSNONE")[:2])
    sino = rebinner(z)
    h1, h2 = ct.split(sino)
    return {"x1": ct.reconstruct(h1)[0] * 1000, "x2": ct.reconstruct(h2)[0] * 1000,
            "x_est": ct.estimate(sino)[0] * 1000}


@pytest.mark.parametrize("encoding", _params())
def test_every_encoding_gives_the_physics(tmp_path, truth, clean_rebinner, encoding):
    phantom, exact, noisy = truth
    spec = ScanSpec(incident_photons=I0, seed=3, **ENCODINGS[encoding])
    folder = write_scan(tmp_path / encoding, spec, phantom, line_integrals_override=noisy)
    scan = read_projections(folder, progress=False)
    first = pydicom.dcmread(next(folder.iterdir()))
    assert first.file_meta.TransferSyntaxUID.is_compressed == (encoding == "rle")
    assert scan.mu_water_per_mm == pytest.approx(0.0193, rel=1e-6)
    assert scan.file_info["preprocessing_flags"]["LogFlag"] == "YES"
    rebin = Rebinner(scan, **GRID)
    roi = rois(rebin.geometry.geom)
    image = hu(rebin, 104.0)
    # measured in every encoding (identical): water -1.2, bone 989.2, fat -99.8, air -999.4 HU
    assert abs(image[roi["water"]].mean()) < 10
    assert abs(image[roi["bone"]].mean() - 1000) < 30
    assert abs(image[roi["fat"]].mean() + 100) < 30
    assert abs(image[roi["air"]].mean() + 1000) < 15
    zs = np.arange(104.0, 117.0, 2.0)
    profile = np.array([hu(rebin, z)[roi["sphere"]].mean() for z in zs])
    assert zs[profile.argmax()] == pytest.approx(Z_SPHERE, abs=1.0)
    assert abs(profile[zs == Z_SPHERE - 4][0] - profile[zs == Z_SPHERE + 4][0]) < 15
    noise = {k: [] for k in ("x1", "x2", "x_est")}
    for z in (106.0, 114.0):
        measured, clean = _halves(rebin, z), _halves(clean_rebinner, z)
        for k in noise:
            noise[k].append((measured[k] - clean[k])[roi["noise"]])
    n1, n2, nf = (np.concatenate(noise[k]) for k in ("x1", "x2", "x_est"))
    assert abs(n1.mean()) < 0.2 * n1.std() and abs(n2.mean()) < 0.2 * n2.std()  # unbiased
    assert abs(np.corrcoef(n1, n2)[0, 1]) < 0.1  # uncorrelated; measured 0.036, std ratios 1.40 and 1.38
    for half in (n1, n2):
        assert half.std() / nf.std() == pytest.approx(np.sqrt(2), rel=0.15)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_every_encoding_decodes_to_the_same_scan(tmp_path, encoding):
    """Small scan: every encoding reads back the written line integrals and geometry, and the VR the
    file carried is recorded (DS for (7041,1001) where the file says so, or text found by content)."""
    small = {"n_channels": 24, "n_rows": 4, "views_per_turn": 32, "n_turns": 1.25, "ffs": "FFSXY"}
    phantom = water_phantom()
    reference = read_projections(write_scan(tmp_path / "ref", ScanSpec(**small), phantom), progress=False)
    scan = read_projections(write_scan(tmp_path / "enc", ScanSpec(**small, **ENCODINGS[encoding]), phantom),
                            progress=False)
    exact = simulate(ScanSpec(**small), phantom)
    p = scan.raw * scan.slope[:, None, None] + scan.intercept[:, None, None]
    assert np.abs(p - exact).max() < 1e-4 * exact.max()
    for name in ("phi_rad", "z_mm", "shift_phi_rad", "shift_z_mm", "shift_rho_mm"):
        assert np.allclose(getattr(scan, name), getattr(reference, name), rtol=1e-6, atol=1e-6), name
    for name in ("rho_mm", "d0_mm", "channel_spacing_mm", "central_channel", "central_row", "mu_water_per_mm"):
        assert getattr(scan, name) == pytest.approx(getattr(reference, name), rel=1e-6), name
    assert scan.shift_phi_rad.max() == pytest.approx(0.004, rel=1e-5)  # FFSXY: 100B angular, as in Table IV
    assert "Table IV" in scan.ffs_shift_tags
    vrs = scan.file_info["private_tag_vrs"]
    water_vr = ENCODINGS[encoding].get("vrs", {}).get("WaterAttenuationCoefficient", "DS")
    if encoding.startswith("implicit"):
        assert vrs["WaterAttenuationCoefficient"].startswith("DS/IS (text" if water_vr == "DS" else "FL (binary")
    else:
        assert vrs["WaterAttenuationCoefficient"] == water_vr


def _element(tag: int, raw: bytes) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds[tag] = pydicom.DataElement(tag, "UN", raw)
    return ds


@pytest.mark.parametrize(("name", "raw", "value"), [
    ("WaterAttenuationCoefficient", b"0.0193", 0.0193),  # DS, 6 bytes: was "expected f4 values"
    ("WaterAttenuationCoefficient", b"0.019300", 0.0193),  # DS, 8 bytes: was "one value, got 2"
    ("WaterAttenuationCoefficient", np.float32(0.0193).tobytes(), np.float32(0.0193)),  # FL as other readers
    ("ConstantRadialDistance", b"1085.6 ", 1085.6),  # DS with its space padding
    ("ConstantRadialDistance", np.float32(1085.6).tobytes(), np.float32(1085.6)),
    ("NumberofDetectorRows", np.uint16(48).tobytes(), 48),  # b"0\x00": binary, not the text "0"
    ("NumberofDetectorRows", b"64", 64),  # IS
    ("DetectorFocalCenterAxialPosition", np.float32(-0.0).tobytes(), 0.0),
])
def test_values_without_a_vr_are_decoded_by_content(tmp_path, name, raw, value):
    from tomoconsensus.ct.dicom_pd_tags import PRIVATE_TAGS

    group, element = PRIVATE_TAGS[name][:2]
    decoded, _ = decode_private(_element((group << 16) | element, raw), name, tmp_path)
    assert decoded == pytest.approx(float(value), rel=1e-7)


def test_two_values_and_garbage_without_a_vr(tmp_path):
    central = np.array([12.5, 2.5], np.float32).tobytes()
    value, vr = decode_private(_element(0x70311033, central), "DetectorCentralElement", tmp_path)
    assert list(value) == [12.5, 2.5] and vr.startswith("FL (binary")
    value, vr = decode_private(_element(0x70311033, b"12.5\\2.5"), "DetectorCentralElement", tmp_path)
    assert list(value) == [12.5, 2.5] and vr.startswith("DS/IS (text")
    with pytest.raises(InputError, match=r"WaterAttenuationCoefficient \(7041,1001\).*got 'n/a'"):
        decode_private(_element(0x70411001, b"n/a "), "WaterAttenuationCoefficient", tmp_path)


@pytest.mark.parametrize(("ffs", "decided_by"), [("FFSZ", "read as such"), ("FFSXY", "FlyingFocalSpotMode"),
                                                 ("FFSXYZ", "read as such")])
def test_swapped_shift_tags_are_found_and_recorded(tmp_path, ffs, decided_by):
    """(7033,100B)/(7033,100C) in TCIA's MATLAB v8 order: by magnitude (1 mm vs 4e-3 rad), or by the
    FFS mode where only the angular shift is non-zero (4e-3 in 100C could be 4 micrometres)."""
    small = {"n_channels": 24, "n_rows": 4, "views_per_turn": 32, "n_turns": 1.25, "ffs": ffs}
    spec = ScanSpec(**small, swap_shift_tags=True)
    scan = read_projections(write_scan(tmp_path / ffs, spec, water_phantom()), progress=False)
    dphi, dz, _ = spec.shifts()
    assert np.allclose(scan.shift_phi_rad, dphi, atol=1e-7) and np.allclose(scan.shift_z_mm, dz, atol=1e-6)
    assert "swapped" in scan.ffs_shift_tags and decided_by in scan.ffs_shift_tags

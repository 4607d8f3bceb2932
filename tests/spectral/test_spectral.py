"""Photon-counting spectral CT against ground truth: exact attenuation, bin sums, decomposition,
unbiased halves, and the file / CLI contract."""

import h5py
import numpy as np
import pytest

from tomoconsensus.cli import main
from tomoconsensus.counts import binomial_thin
from tomoconsensus.ct.protocol import load_geometry
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.errors import InputError
from tomoconsensus.modality import split_and_reconstruct
from tomoconsensus.spectral.io import read_counts, write_counts
from tomoconsensus.spectral.materials import attenuation_per_mm
from tomoconsensus.spectral.modality import SpectralMeasurement, SpectralModality
from tomoconsensus.spectral.physics import decompose, expected_counts, flat_field, vmi_hu
from tomoconsensus.spectral.simulate import SpectralSimulation, disc, simulate_slice, simulate_stack
from tomoconsensus.spectral.spectrum import Spectrum, bin_membership, check_bin_edges, load_spectrum

EDGES = np.array([20.0, 33.2, 50.0, 70.0, 120.0])


@pytest.fixture(scope="module")
def geom():
    return load_geometry("demo-fanbeam")


def water_cylinder(geom, radius_mm=100.0):
    x, y = geom.pixel_centers_mm()
    return np.where(x ** 2 + y ** 2 < radius_mm ** 2, 0.0, -1000.0)


def test_water_attenuation_equals_xraydb_material_table():
    import xraydb

    e = np.array([30.0, 50.0, 70.0, 100.0])
    np.testing.assert_allclose(attenuation_per_mm("water", e), xraydb.material_mu("water", e * 1e3) / 10, rtol=1e-4)
    # NIST XCOM, water at 60 keV: mu/rho = 0.2059 cm^2/g
    assert attenuation_per_mm("water", [60.0])[0] == pytest.approx(0.02059, rel=2e-3)


def test_shipped_spectrum_sums_to_one_and_bad_spectra_are_refused(tmp_path):
    s = load_spectrum()
    assert s.fraction.sum() == pytest.approx(1.0, abs=1e-6) and s.energies_kev.max() < 120.0
    assert 50.0 < float(s.energies_kev @ s.fraction) < 65.0  # mean energy of a 120 kVp beam
    bad = tmp_path / "counts.csv"
    np.savetxt(bad, np.column_stack([[40.0, 60.0], [100.0, 300.0]]), delimiter=",")
    with pytest.raises(InputError, match="counts.csv.*sum to 1.*sum 400"):
        load_spectrum(bad)
    with pytest.raises(InputError, match="increasing"):
        check_bin_edges([20.0, 50.0, 33.0])


def test_monoenergetic_counts_are_exact_and_fbp_recovers_mu(geom):
    mu60 = attenuation_per_mm("water", [60.0])[0]
    spectrum, edges = Spectrum.monoenergetic(60.0), np.array([50.0, 70.0])
    a = np.array([[0.0, 10.0, 200.0]])  # water paths in mm
    np.testing.assert_allclose(expected_counts(a, ["water"], spectrum, edges, 1e5)[0], 1e5 * np.exp(-mu60 * a[0]))
    mod = SpectralModality(geom, spectrum, edges, materials=("water",))
    sim = SpectralSimulation(edges_kev=tuple(edges), insert_mg_per_ml=())
    s = simulate_slice(water_cylinder(geom), mod, sim, np.random.default_rng(0))
    x, y = geom.pixel_centers_mm()
    centre = x ** 2 + y ** 2 < 60 ** 2
    assert mod.bin_mu(s.reference)[0][centre].mean() == pytest.approx(mu60, rel=0.01)


def test_bin_counts_sum_to_the_integrated_counts():
    spectrum = load_spectrum()
    a = np.random.default_rng(1).uniform(0, 1, (3, 50)) * np.array([[300.0], [5.0], [20.0]])  # water, bone, iodine
    full = np.array([spectrum.energies_kev[0] - 0.5, spectrum.energies_kev[-1] + 0.5])
    bins = expected_counts(a, ["water", "bone", "iodine"], spectrum, check_bin_edges(np.concatenate(
        [full[:1], EDGES[1:-1], full[1:]])), 1e5)
    mu = np.stack([attenuation_per_mm(m, spectrum.energies_kev) for m in ("water", "bone", "iodine")])
    direct = 1e5 * np.sum(spectrum.fraction * np.exp(-(a.T @ mu)), axis=1)  # integral over energy, one sum
    np.testing.assert_allclose(bins.sum(0), direct, rtol=1e-10)
    assert flat_field(spectrum, full, 1e5).sum() == pytest.approx(1e5)
    assert bin_membership(spectrum, EDGES).sum(0).max() == 1  # no energy counted twice


def test_decomposition_recovers_iodine_within_5_percent_on_noiseless_data(geom):
    mod = SpectralModality(geom, load_spectrum(), EDGES, materials=("water", "iodine"), reference_water_mm=200)
    sim = SpectralSimulation(edges_kev=tuple(EDGES), insert_mg_per_ml=(2.0, 5.0, 10.0), insert_diameter_mm=24)
    s = simulate_slice(water_cylinder(geom), mod, sim, np.random.default_rng(0))
    assert len(s.inserts) == 3
    mats = decompose(mod.bin_mu(s.reference), mod.matrix)
    x, y = geom.pixel_centers_mm()
    water = (x ** 2 + y ** 2 < 90 ** 2) & (s.materials[2] == 0)
    assert abs(np.median(mats[1][water])) < 0.1  # mg/mL in plain water
    for ins in s.inserts:
        roi = disc(geom, ins.x_mm, ins.y_mm, ins.diameter_mm / 2)
        assert mats[1][roi].mean() == pytest.approx(ins.mg_per_ml, rel=0.05)
    vmi = vmi_hu(mats, ("water", "iodine"), 70.0)
    assert abs(np.median(vmi[water])) < 10.0  # HU of water at 70 keV; no cupping after the precorrection


def test_halves_are_unbiased_and_uncorrelated(geom):
    rng = np.random.default_rng(2)
    lam = rng.uniform(5, 50, 1_000_000)
    counts = rng.poisson(lam)
    y1, y2 = binomial_thin(counts, rng)
    assert np.array_equal(y1 + y2, counts)
    assert abs(np.corrcoef(y1 - lam / 2, y2 - lam / 2)[0, 1]) < 0.01
    assert abs(np.mean(y1 - lam / 2)) < 4 * np.sqrt(np.mean(lam) / 2 / len(lam))
    mod = SpectralModality(geom, load_spectrum(), EDGES)
    m = SpectralMeasurement(np.full((4, geom.n_views, geom.n_detectors), 1000), np.full(4, 2000.0))
    (w1, c1, _), (w2, c2, _) = mod.split(m, rng)
    assert (w1, w2) == ("odd", "even") and c1.shape == c2.shape == (4, geom.n_views // 2, geom.n_detectors)


def test_views_split_halves_estimate_the_same_image(geom):
    mod = SpectralModality(geom, load_spectrum(), EDGES)
    sim = SpectralSimulation(i0=2e5)
    s = simulate_slice(water_cylinder(geom), mod, sim, np.random.default_rng(3))
    images = split_and_reconstruct(mod, s.measurement, np.random.default_rng(4))
    x, y = geom.pixel_centers_mm()
    inner = x ** 2 + y ** 2 < 80 ** 2
    for b in range(4):
        d1, d2 = images.x1[b] - s.reference[b], images.x2[b] - s.reference[b]
        assert abs(d1[inner].mean()) < 0.01 and abs(d2[inner].mean()) < 0.01  # bin HU/1000: < 10 HU bias
        assert abs(np.corrcoef(d1[inner], d2[inner])[0, 1]) < 0.1


def _count_file(tmp_path, geom, n=2):
    mod = SpectralModality(geom, load_spectrum(), EDGES)
    hu = np.stack([water_cylinder(geom, r) for r in (100.0, 80.0)][:n])
    stack = simulate_stack(hu, [f"p{i}_000" for i in range(n)], [f"p{i}" for i in range(n)], mod,
                           SpectralSimulation(), seed=0)
    return write_counts(tmp_path / "counts.h5", stack)


def test_prepare_spectral_cli_writes_bins_as_channels(tmp_path, geom):
    path = _count_file(tmp_path, geom)
    assert read_counts(path).counts.shape == (2, 4, geom.n_views, geom.n_detectors)
    out = tmp_path / "prepared.h5"
    assert main(["prepare", "spectral", "--counts", str(path), "--geometry", "demo-fanbeam", "--device", "cpu",
                 "--out", str(out)]) == 0
    data = read_prepared(out)
    assert data.x1.shape == (2, 4, 128, 128) and data.attrs["modality"] == "spectral"
    assert data.reference is not None and data.attrs["split_kind"] == "views"
    from tomoconsensus.evaluation import evaluate

    summary = evaluate(out, {}).summary()
    assert set(summary) == {"FBP per bin"} and summary["FBP per bin"]["rmse_hu"]["mean"] > 0


def test_bad_count_files_are_one_line_errors(tmp_path, geom, capsys):
    path = _count_file(tmp_path, geom, n=1)
    out = tmp_path / "out.h5"
    cases = {"negative": lambda f: f["counts"].__setitem__((0, 0, 0, 0), -3),
             "fractional": lambda f: (f.__delitem__("counts"), f.create_dataset("counts", data=np.full(
                 (1, 4, geom.n_views, geom.n_detectors), 2.5))),
             "edges": lambda f: f.attrs.__setitem__("bin_edges_kev", [20.0, 50.0, 33.2, 70.0, 120.0]),
             "flat": lambda f: f.__setitem__("flat2", 1) or f.__delitem__("flat")}
    expected = {"negative": "negative", "fractional": "fractional", "edges": "increasing order", "flat": "flat"}
    for name, spoil in cases.items():
        bad = tmp_path / f"{name}.h5"
        bad.write_bytes(path.read_bytes())
        with h5py.File(bad, "a") as f:
            spoil(f)
        before = bad.read_bytes()
        assert main(["prepare", "spectral", "--counts", str(bad), "--geometry", "demo-fanbeam", "--out",
                     str(out)]) == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{name}.h5" in err and expected[name] in err, err
        assert not out.exists() and bad.read_bytes() == before
    assert main(["prepare", "spectral", "--counts", str(path), "--geometry", "ldct-fanbeam", "--out", str(out)]) == 2
    assert "views x" in capsys.readouterr().err
    assert main(["prepare", "spectral", "--counts", str(path), "--geometry", "demo-fanbeam", "--spectrum", str(path),
                 "--out", str(out)]) == 2  # a binary file given as the spectrum table
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--spectrum" in err and "CSV" in err and not out.exists()


def test_split_and_reconstruct_filters_once_and_gives_the_same_images(geom):
    mod = SpectralModality(geom, load_spectrum(), EDGES)
    s = simulate_slice(water_cylinder(geom), mod, SpectralSimulation(insert_mg_per_ml=(5.0,)), np.random.default_rng(5))
    joint = mod.split_and_reconstruct(s.measurement, np.random.default_rng(0))
    half1, half2 = mod.split(s.measurement, np.random.default_rng(0))
    separate = (mod.reconstruct(half1), mod.reconstruct(half2), mod.estimate(s.measurement))
    for a, b in zip(joint, separate, strict=True):
        assert a.shape == (4, 128, 128) and a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=2e-5)  # bin HU/1000: 0.02 HU


def test_repeated_scans_are_the_same_object_with_independent_noise(geom):
    mod = SpectralModality(geom, load_spectrum(), EDGES)
    hu = water_cylinder(geom)[None]
    sim = SpectralSimulation(insert_mg_per_ml=(2.0, 10.0))
    one = simulate_stack(hu, ["a_000"], ["a"], mod, sim, seed=7)
    three = simulate_stack(hu, ["a_000"], ["a"], mod, sim, seed=7, repeats=3)
    assert three.slice_ids == ["a_000_scan0", "a_000_scan1", "a_000_scan2"] and three.patient_ids == ["a"] * 3
    assert np.array_equal(three.counts[0], one.counts[0])  # the first scan is the single scan: same seed, same draw
    assert np.array_equal(three.reference[2], one.reference[0]) and np.array_equal(three.iodine_mg_per_ml[1],
                                                                                   one.iodine_mg_per_ml[0])
    d01, d12 = (three.counts[0] - three.counts[1]).ravel(), (three.counts[1] - three.counts[2]).ravel()
    assert abs(np.corrcoef(d01, d12)[0, 1] + 0.5) < 0.02  # independent draws: corr(a-b, b-c) = -1/2


def test_iodine_statistics_pairs_rois_and_gives_the_standard_error():
    from tomoconsensus.spectral.analysis import iodine_change, iodine_statistics, quality_markdown

    rng = np.random.default_rng(0)
    n = 400
    truth = np.repeat([2.0, 10.0], n)
    ref = truth + rng.normal(0, 1.0, 2 * n)  # ROI-to-ROI spread (anatomy), shared by the paired rows
    method = 0.95 * ref + rng.normal(0, 0.2, 2 * n)  # 5 % lower, paired noise 0.2 mg/mL
    row = lambda v: {"vmi70_rmse_hu": 1.0, "vmi70_ssim": 0.9,  # noqa: E731
                     "iodine": [{"true": t, "measured": m} for t, m in zip(truth, v, strict=True)]}
    table = {"Reference": row(ref), "Method": row(method)}
    stats = iodine_statistics(table, "Method", "Reference")
    assert set(stats) == {2.0, 10.0} and stats[2.0]["n"] == n
    for c, s in stats.items():
        assert s["change"] == pytest.approx(-0.05, abs=3 * s["se"])
        # sd of the paired difference (0.05 * spread of ref, and the 0.2 noise), not of the ROIs (1.0)
        expected_se = np.sqrt(0.2 ** 2 + (0.05 * 1.0) ** 2) / np.sqrt(n) / c
        assert s["se"] == pytest.approx(expected_se, rel=0.15)
    assert iodine_change(table, "Method", "Reference") == pytest.approx(max(abs(s["change"]) for s in stats.values()))
    text = quality_markdown(table, "Method")
    assert f"{n} ROIs per concentration" in text and "2 mg/mL vs Reference" in text and "10 mg/mL vs Method" in text


def test_random_inserts_lie_in_soft_tissue_apart_and_within_their_range(geom):
    from tomoconsensus.spectral.simulate import place_inserts

    hu = water_cylinder(geom, 150.0)
    sim = SpectralSimulation(insert_mg_per_ml=(), random_inserts=6, random_range_mg_per_ml=(0.5, 15.0))
    inserts = place_inserts(hu, geom, sim, np.random.default_rng(1))
    assert len(inserts) == 6 and len({i.mg_per_ml for i in inserts}) == 6
    assert all(0.5 <= i.mg_per_ml <= 15.0 for i in inserts)
    for a in inserts:
        assert np.hypot(a.x_mm, a.y_mm) + a.diameter_mm / 2 + 3.0 <= 150.0 + 3.0  # inside the water, with the margin
        assert all(np.hypot(a.x_mm - b.x_mm, a.y_mm - b.y_mm) > a.diameter_mm + 6 for b in inserts if b is not a)
    fixed = place_inserts(hu, geom, SpectralSimulation(), np.random.default_rng(1))
    assert [i.mg_per_ml for i in fixed] == [2.0, 5.0, 10.0]  # without random inserts: the fixed ones, as before

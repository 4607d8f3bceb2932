"""The spectral (photon-counting) CT demo: bin counts simulated from the shipped anatomy (``demo spectral``).

Sized for the issue's 10 minutes on 2 CPU cores (docs/spectral.md, 'The demo'): the CT demo's patients
with fewer training slices (:func:`tomoconsensus.study.anatomy.nested_split`), 4 channels (one per
energy bin). The training slices carry iodine inserts of random concentration; the test slices (2
scans each, independent noise) the inserts of 2, 5 and 10 mg/mL of the iodine check. The protocol is
``demo.toml`` beside this module.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomoconsensus.atomic import write_text_atomic
from tomoconsensus.errors import InputError
from tomoconsensus.study.anatomy import nested_split
from tomoconsensus.study.spec import Check, DemoSpec
from tomoconsensus.study.story import ratio_claim


@dataclass(frozen=True)
class SpectralDemoData:
    """What the spectral demo simulates and on which slices (values: demo.toml).

    Attributes
    ----------
    geometry : str
        Named fan-beam geometry.
    split : str
        ``views`` (odd/even views in every bin) or ``thinning``.
    pool_train_slices_per_patient, pool_val_slices, pool_test_slices : int
        The CT demo's slices these are drawn from.
    train_slices_per_patient, max_val_slices, max_test_slices : int
        Evenly spaced among each training patient's pool slices; the first of the others.
    test_repeats : int
        Scans of each test slice (independent noise): ROIs for the iodine statistics.
    train_random_inserts : int
        Iodine inserts of random concentration (0.5-15 mg/mL) per training slice, where they fit.
    i0_photons : float
        Photons per detector element (4 channels wide) and view, all energies.
    edges_kev : tuple of float
        Energy-bin edges, keV (one channel per bin).
    keep_means_mm : float
        The quantitative output keeps x_est's means in structures of this diameter and larger
        (:mod:`tomoconsensus.local_means`): the iodine inserts' 18 mm.
    """

    geometry: str
    split: str
    pool_train_slices_per_patient: int
    pool_val_slices: int
    pool_test_slices: int
    train_slices_per_patient: int
    max_val_slices: int
    max_test_slices: int
    test_repeats: int
    train_random_inserts: int
    i0_photons: float
    edges_kev: tuple[float, ...]
    keep_means_mm: float

    def simulation(self, split: str = "test"):
        """Validation and test slices: inserts of 2, 5 and 10 mg/mL; training slices: ``train_random_inserts``
        of random concentration (0.5-15 mg/mL, none at the test's values), as contrast-enhanced scans."""
        from tomoconsensus.spectral.simulate import SpectralSimulation

        sim = SpectralSimulation(i0=self.i0_photons, edges_kev=self.edges_kev)
        if split == "train":
            return dataclasses.replace(sim, insert_mg_per_ml=(), random_inserts=self.train_random_inserts)
        return sim

    def describe(self, protocol) -> str:
        bins, t = "-".join(f"{e:g}" for e in self.edges_kev), protocol.training
        return (f"reduced protocol: ideal photon-counting CT on {self.geometry}, 120 kVp, bins {bins} keV, "
                f"{self.i0_photons:g} photons per element and view, {self.train_slices_per_patient} training slices "
                f"per patient with up to {self.train_random_inserts} iodine inserts of random concentration, test "
                f"{self.max_test_slices} slices x {self.test_repeats} scans with inserts of 2/5/10 mg/mL, "
                f"{t.describe()}, {t.channels}-channel UNet, beta_w {t.beta_w:g}, beta_r {t.beta_r:g}")


def prepare_spectral_demo(out_dir: Path, protocol, seed: int = 0, progress: bool = True,
                          device: str = "cpu") -> tuple[Path, Path, Path]:
    """Count files (``spectral_<split>_counts.h5``, kept for the iodine truth) and prepared files."""
    from tomoconsensus.spectral.io import write_counts
    from tomoconsensus.spectral.pipeline import spectral_modality, write_spectral
    from tomoconsensus.spectral.simulate import simulate_stack
    from tomoconsensus.tomo.grid import to_geometry_grid

    sd: SpectralDemoData = protocol.data
    if protocol.training.channels != len(sd.edges_kev) - 1:
        raise InputError("spectral demo protocol", "training.channels", f"{len(sd.edges_kev) - 1} (one per bin)",
                         protocol.training.channels)
    modality = spectral_modality(sd.geometry, sd.edges_kev, split=sd.split, device=device)
    paths = []
    for name, sub, offset in nested_split((sd.pool_train_slices_per_patient, sd.pool_val_slices,
                                           sd.pool_test_slices), sd.train_slices_per_patient, sd.max_val_slices,
                                          sd.max_test_slices):
        hu = np.stack([to_geometry_grid(h, float(p), modality.geom) for h, p in zip(sub.hu, sub.pixel_spacing_mm,
                                                                                     strict=True)])
        stack = simulate_stack(hu, sub.slice_ids, sub.patient_ids, modality, sd.simulation(name), seed + offset,
                               progress, repeats=sd.test_repeats if name == "test" else 1)
        counts = write_counts(out_dir / f"spectral_{name}_counts.h5", stack)
        path = out_dir / f"spectral_{name}.h5"
        print(write_spectral(path, modality, stack, seed + offset, counts, progress=progress))
        paths.append(path)
    return paths[0], paths[1], paths[2]


def iodine_checks(table: dict, methods: list[str], base: str) -> list[Check]:
    """Issue 11: every concentration's mean iodine of each method within 2 % of the noiseless reference's
    and of the same scans' ``base``, each with the standard error of the paired ROI differences."""
    from tomoconsensus.spectral.analysis import iodine_statistics

    checks = []
    for m in methods:
        for against, what in (("Reference", "the noiseless reference's"), (base, f"the same scans' {base}")):
            stats = iodine_statistics(table, m, against)
            numbers = ", ".join(f"{c:g} mg/mL {100 * v['change']:+.1f} +- {100 * v['se']:.1f} %"
                                for c, v in stats.items())
            n = next(iter(stats.values()))["n"]
            checks.append((f"{m} keeps iodine ROI means within 2 % of {what} ({numbers}; {n} ROIs each, "
                           f"+- standard error)", all(abs(v["change"]) < 0.02 for v in stats.values())))
    return checks


def spectral_quality(out_dir: Path, ev) -> tuple[str, list[Check]]:
    """The spectral demo's own table (VMI 70 keV, iodine per insert; report/spectral_quality.md/.json)
    and its checks (issue 11): after denoising, every concentration's mean iodine is within 2 % of the
    noiseless reference's (the FBP of the noiseless counts, whose beam hardening no method can
    remove), and within 2 % of the same scans' FBP (what the training moved). Each with the standard
    error of the paired ROI differences; a difference within about 2 standard errors is not resolved."""
    from tomoconsensus.data.prepared import read_prepared
    from tomoconsensus.spectral.analysis import quality_markdown, quality_table
    from tomoconsensus.spectral.io import read_counts

    test = read_prepared(out_dir / "spectral_test.h5")
    truth = read_counts(out_dir / "spectral_test_counts.h5").iodine_mg_per_ml
    table = quality_table(test.reference, ev.images, test.attrs, truth)
    base = next(iter(ev.images))
    write_text_atomic(out_dir / "report" / "spectral_quality.json", json.dumps(table, indent=2))
    markdown = quality_markdown(table, base)
    write_text_atomic(out_dir / "report" / "spectral_quality.md", markdown)
    return markdown, iodine_checks(table, [m for m in ev.images if m.startswith("Consensus")], base)


DEMO = DemoSpec(SpectralDemoData, Path(__file__).with_name("demo.toml"), prepare_spectral_demo, "FBP per bin",
                "rmse_hu", ratio_claim("FBP", ", mean of the bins"), "docs/spectral.md, 'The demo'", spectral_quality,
                max_minutes=10.0, keep_means=(("consensus", "Consensus, means >= {diameter} mm kept"),))

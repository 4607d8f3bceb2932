"""The PET demo: FDG-like prompts simulated from the shipped anatomy (``demo pet``; docs/pet.md, 'The demo').

The CT demo's patients with fewer slices (:func:`tomoconsensus.study.anatomy.nested_split`); prompts
simulated per slice (:mod:`tomoconsensus.pet.simulate`), binomially thinned into two halves and
reconstructed by corrected FBP as ``prepare pet`` does; baseline the FBP of all counts. The test
slices' lesions and tissue classes are kept for the lesion table. The protocol is ``demo.toml``
beside this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomoconsensus.atomic import write_text_atomic
from tomoconsensus.study.anatomy import nested_split
from tomoconsensus.study.spec import DemoSpec
from tomoconsensus.study.story import ratio_claim


@dataclass(frozen=True)
class PETDemoData:
    """What the PET demo simulates and on which slices (values: demo.toml).

    Attributes
    ----------
    pool_train_slices_per_patient, pool_val_slices, pool_test_slices : int
        The CT demo's slices these are drawn from (its train_slices_per_patient, max_val_slices,
        max_test_slices).
    train_slices_per_patient, max_val_slices, max_test_slices : int
        Evenly spaced among each training patient's pool slices; the first of the others.
    counts_per_slice : float
        Expected prompts per 2-D slice.
    recon : str
        ``fbp`` (corrected FBP) or ``osem`` (4 iterations of 8 subsets) of every half and x_est.
    """

    pool_train_slices_per_patient: int
    pool_val_slices: int
    pool_test_slices: int
    train_slices_per_patient: int
    max_val_slices: int
    max_test_slices: int
    counts_per_slice: float
    recon: str

    def simulation(self):
        from tomoconsensus.pet.simulate import PETSimulation

        return PETSimulation(counts_per_slice=self.counts_per_slice)

    def split(self):
        pool = (self.pool_train_slices_per_patient, self.pool_val_slices, self.pool_test_slices)
        return nested_split(pool, self.train_slices_per_patient, self.max_val_slices, self.max_test_slices)

    def describe(self, protocol) -> str:
        sim, t = self.simulation(), protocol.training
        recon = "corrected FBP" if self.recon == "fbp" else self.recon.upper()
        return (f"reduced protocol: 2-D PET simulated from CT anatomy, {sim.image_size}^2 @ {sim.pixel_size_mm:g} mm, "
                f"{sim.counts_per_slice:g} prompts per slice, {sim.lesions_per_slice} lesions of SUV "
                f"{sim.lesion_suv:g} per slice, binomial thinning, {recon}, "
                f"{self.train_slices_per_patient} training slices per patient, "
                f"{t.describe()}, beta_w {t.beta_w:g}, beta_r {t.beta_r:g}")


def prepare_pet_demo(out_dir: Path, protocol, seed: int = 0, progress: bool = True,
                     device: str = "cpu") -> tuple[Path, Path, Path]:
    """Prompt files and prepared files; the test slices' lesions and tissue classes are kept
    (``pet_test_regions.npz``) for the lesion table."""
    from tomoconsensus.pet.io import write_prompts
    from tomoconsensus.pet.pipeline import pet_modality, write_pet
    from tomoconsensus.pet.simulate import save_truth, simulate_prompts

    pd: PETDemoData = protocol.data
    sim, paths = pd.simulation(), []
    for name, sub, offset in pd.split():
        stack, sims = simulate_prompts(sub.hu, sub.pixel_spacing_mm, sub.slice_ids, sub.patient_ids, sim, seed + offset)
        prompts = write_prompts(out_dir / f"pet_{name}_prompts.h5", stack)
        if name == "test":
            save_truth(out_dir / "pet_test_regions.npz", sims)
        path = out_dir / f"pet_{name}.h5"
        modality = pet_modality(stack, sim.image_size, sim.pixel_size_mm, pd.recon)
        print(write_pet(path, modality, stack, seed + offset, prompts, progress=progress))
        paths.append(path)
    return paths[0], paths[1], paths[2]


def pet_quality(out_dir: Path, ev) -> tuple[str, list[tuple[str, bool]]]:
    """The PET demo's lesion table (report/pet_quality.md/.json): SUV bias, contrast recovery, background
    variability and CoV per method; checked: consensus lowers the background CoV of the FBP."""
    from tomoconsensus.data.prepared import read_prepared
    from tomoconsensus.pet.regions import quality_markdown, quality_table, slice_regions
    from tomoconsensus.pet.simulate import PETSimulation, load_truth

    sim = PETSimulation()
    truth = load_truth(out_dir / "pet_test_regions.npz")
    rng = np.random.default_rng(0)
    regions = [slice_regions(t, sim.geometry(), sim.blur_fwhm_mm, rng) for t in truth]
    table = quality_table(ev.images, read_prepared(out_dir / "pet_test.h5").reference, regions)
    write_text_atomic(out_dir / "report" / "pet_quality.json", json.dumps(table, indent=2))
    markdown = quality_markdown(table)
    write_text_atomic(out_dir / "report" / "pet_quality.md", markdown)
    base = next(iter(ev.images))
    if "Consensus" not in table:  # a run without the consensus networks (examples/pet --prepare-only)
        return markdown, []
    cov = {m: table[m]["background_cov"] for m in (base, "Consensus")}
    return markdown, [(f"Consensus background CoV < {base} background CoV ({100 * cov['Consensus']:.1f} % vs "
                       f"{100 * cov[base]:.1f} %)", cov["Consensus"] < cov[base])]


DEMO = DemoSpec(PETDemoData, Path(__file__).with_name("demo.toml"), prepare_pet_demo, "FBP (all counts)", "rmse",
                ratio_claim("FBP"), "docs/pet.md, 'The demo'", pet_quality)

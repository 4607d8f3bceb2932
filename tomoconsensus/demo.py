"""The one-command demo: the whole method on embedded data, with a reduced protocol.

* CT: trains on 11 patients of 12 clinical TCIA series shipped in the package on the demo grid
  (``embedded/tcia_series_demo_hu.npz``: chest and abdomen, several vendors, CC BY; up to
  ``train_slices_per_patient`` slices each), selects each run's epoch on one held-out patient
  (``LIDC-IDRI-0001``, noisy data only) and tests on the 12 slices of 6 patients of another
  collection (TCIA COVID-19-NY-SBU, ``embedded/tcia_covid19_ny_sbu_axial_hu.npz``) that no network
  saw. Quarter-dose sinograms are simulated on the ``demo-fanbeam`` geometry (LDCT distances and
  fan angle, 128^2 grid of 3 mm pixels); baselines FBP (all views) and TV.
* MR: **simulated** 15-coil k-space (:mod:`tomoconsensus.mr.simulate`, docs/mr-simulation.md):
  training and validation anatomy of the CT demo's TCIA series, tested on the COVID-19-NY-SBU
  slices (2 patients). The objects are real anatomy given a T1-weighted-like contrast, a smooth
  background phase and a 128^2 matrix; a ring of 15 birdcage-like elements with correlated noise at
  an SNR of 30, a 2x oversampled readout and a noise scan, read back through the scanner raw-data
  path (pre-whitening, oversampling removal), then compressed to 8 virtual coils. No openly
  licensed multi-slice multi-coil k-space could be shipped (see tests/data/ATTRIBUTION.md). Then
  random 4x masks with the centre lines, the two halves, ESPIRiT and SENSE run exactly as on
  measured data; baselines zero-filling and SENSE.

Consensus, Noise2Noise and Noise2Clean are trained with a smaller UNet and fewer steps than the
paper (stated in the output); each run keeps the epoch with the lowest held-out self-supervised
loss (no reference used); then all are evaluated against the baselines on the test patients.
Both self-supervised methods are applied by default to (x1+x2)/2, the linear reconstruction of all
the data (CT: the FBP of all views); the report also gives the paper's consensus output z =
(f1(x1)+f2(x2))/2 and Noise2Noise applied to one half, f(x1), as the paper's Noise2Noise most
likely was.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from skimage.transform import resize

from tomoconsensus.atomic import write_text_atomic
from tomoconsensus.ct.io import ImageStack, read_images
from tomoconsensus.ct.pipeline import ct_modality, fan_beam_geometry, simulated_source, tune_tv, write_ct
from tomoconsensus.ct.simulate import to_geometry_grid
from tomoconsensus.ct.tv_tuning import DEFAULT_GRID
from tomoconsensus.demo_folder import claim_demo_folder
from tomoconsensus.denoise import denoise
from tomoconsensus.distill import distill
from tomoconsensus.errors import InputError
from tomoconsensus.evaluate import evaluate
from tomoconsensus.learn.config import TrainConfig
from tomoconsensus.learn.loop import train
from tomoconsensus.mr.io import KSpaceVolume
from tomoconsensus.mr.pipeline import mr_modality, write_mr
from tomoconsensus.mr.simulate import (
    ScannerSimulation,
    scanner_noise_std,
    scanner_volumes,
    simulated_volumes,
    t1_like_magnitude,
)
from tomoconsensus.pet.io import write_prompts
from tomoconsensus.pet.pipeline import pet_modality, write_pet
from tomoconsensus.pet.simulate import PETSimulation, load_truth, save_truth, simulate_prompts
from tomoconsensus.report import metrics_json, metrics_markdown, write_report
from tomoconsensus.spectral.io import write_counts
from tomoconsensus.spectral.pipeline import spectral_modality, write_spectral
from tomoconsensus.spectral.simulate import SpectralSimulation, simulate_stack
from tomoconsensus.story import check_story as check_claims
from tomoconsensus.story import converged_check, ct_claims, failed, iodine_checks, mr_claims, ratio_claim, verdict_lines

EMBEDDED = Path(__file__).parent / "embedded"
#: 12 COVID-19-NY-SBU slices of 6 patients: the CT demo's test patients, and the MR demo's anatomy.
CT_IMAGES = EMBEDDED / "tcia_covid19_ny_sbu_axial_hu.npz"
#: 453 slices of 12 TCIA series (12 patients) on the demo grid: the CT demo's training/validation data.
CT_SERIES = EMBEDDED / "tcia_series_demo_hu.npz"
CT_VAL_PATIENTS = ("LIDC-IDRI-0001",)
#: The MR demo's split of the COVID-19-NY-SBU patients (3 train, 1 validation, 2 test).
TEST_PATIENTS = ("A056642", "A058062")
VAL_PATIENTS = ("A048383",)
#: How the MR demo's k-space was made (attribute ``source`` of its prepared files).
MR_SOURCE = "simulated from embedded TCIA slices (T1-like contrast, birdcage coils)"
#: The MR simulations of :class:`MRDemoData` (``simulation``).
MR_SIMULATIONS = ("scanner", "simple")
#: (method, output variant, label in the report); the runs are trained once per method.
METHODS = (("consensus", None, "Consensus"), ("consensus", "z", "Consensus z (paper)"),
           ("noise2noise", None, "Noise2Noise"), ("noise2noise", "f1", "Noise2Noise f(x1)"),
           ("noise2clean", None, "Noise2Clean"), ("distill", None, "Distilled g(x_est)"))
#: The run a distilled network learns from (issue 10: deployment on the images a scanner makes).
DISTILL_TEACHER = "consensus"


@dataclass(frozen=True)
class MRDemoData:
    """How the MR demo's k-space is simulated and undersampled (paper's NYU knee in brackets)."""

    matrix: int = 128  # [640 x 368: 2x oversampled readout of 320 pixels]
    simulation: str = "scanner"  # or "simple": 8 birdcage coils, i.i.d. noise of noise_std, no oversampling
    coils: int = 15  # [15]
    snr: float = 30.0  # "scanner": SNR of the fully sampled RSS image in tissue (an assumption, docs/mr-simulation.md)
    noise_std: float = 0.02  # "simple": per k-space sample; the brightest tissue (fat) has signal 1
    coil_correlation: float = 0.3  # "scanner": noise correlation of neighbouring elements (0.3 ** ring distance)
    readout_oversampling: int = 2  # "scanner" [2]
    virtual_coils: int | None = 8  # coil compression before ESPIRiT (None: all coils); docs/mr-simulation.md
    max_phase_radians: float = 1.0
    acceleration: float = 4.0  # [4]
    center_lines: int = 16  # [48 of 368 phase encodes: the same fraction, 13 %]
    sense_lambda: float = 0.01
    beta_w: float = 1e-6  # [1e-6]
    beta_r: float = 5.0  # [5]
    train_orientations: int = 2  # each training slice also flipped left-right (and up-down, both with 4)
    anatomy: str = "series"  # training/validation anatomy: "series" (11 + 1 patients, as the CT demo) or
    #                          "covid" (3 + 1 COVID-19-NY-SBU patients, the demo before 2026-12)
    train_slices_per_patient: int = 8  # with anatomy "series": 88 slices, 176 objects with the flips
    patches_per_slice: int = 2  # [40]; 176 objects x 2 patches: 22 steps per epoch

    def scanner(self) -> ScannerSimulation:
        """The "scanner" simulation's settings."""
        return ScannerSimulation(self.coils, self.snr, None, self.coil_correlation, self.readout_oversampling)

    def training(self, protocol: DemoProtocol) -> dict[str, Any]:
        """The MR runs' own :class:`TrainConfig` values (the protocol holds the shared ones)."""
        return dict(channels=2, patches_per_slice=self.patches_per_slice, epochs=protocol.epochs,
                    beta_w=self.beta_w, beta_r=self.beta_r)

    def describe(self, protocol: DemoProtocol) -> str:
        anatomy = (f"anatomy of {self.train_slices_per_patient} slices x 11 patients (TCIA series)"
                   if self.anatomy == "series" else "anatomy of 3 COVID-19-NY-SBU patients")
        coils = (f"simulated {self.coils}-coil k-space" if self.simulation == "simple" else
                 f"simulated {self.coils}-coil scanner k-space (SNR {self.snr:g}, correlated noise, "
                 f"{self.readout_oversampling}x readout)")
        if self.virtual_coils is not None and self.virtual_coils < self.coils:
            coils += f" compressed to {self.virtual_coils} virtual coils"
        return (f"reduced protocol: {coils}, {self.matrix}^2, {self.acceleration:g}x with "
                f"{self.center_lines} centre lines, training {anatomy} in {self.train_orientations} orientations, "
                f"{protocol.describe_training(self.patches_per_slice, protocol.epochs)} "
                f"(paper: 15-coil knee 640x368, 48 centre lines, UNet-64 depth 4, 96^2, batch 40, 100 epochs)")


@dataclass(frozen=True)
class CTDemoData:
    """What the CT demo trains on and how long (paper values in brackets).

    Every file is prepared with the count-domain ``thinning`` split (``split``): the validation
    patient's held-out loss then tracks the clean error, the view split's does not (docs/method.md,
    'Choosing without a reference', ``benchmarks/results/selection_criterion.json``). The training split,
    ``beta_r`` = 0, 32^2 patches and 24 epochs are the configuration with the lowest value of that
    criterion among the 8 measured (no clean image, no test patient). The baselines are tuned as well as
    they may be: Noise2Clean (the supervised bound) trains ``noise2clean_epochs``
    and keeps the epoch of its lowest clean validation loss; TV's weight is the one of ``tv_lam_grid``
    with the lowest RMSE against the validation patient's reference on ``tv_tune_slices`` slices
    (:mod:`tomoconsensus.ct.tv_tuning`).
    """

    train_slices_per_patient: int = 20  # 11 patients -> 220 slices [10 patients x 50]
    max_val_slices: int = 10
    max_test_slices: int = 12
    patches_per_slice: int = 2  # [40]; a small epoch so that the epoch is selected often
    epochs: int = 24  # [100]; the chosen configuration's criterion selected epoch 20 of 24
    beta_w: float = 5e-6  # [5e-6]
    beta_r: float = 0.0  # [0.5]; chosen by the thinning criterion (selection_criterion.json, run c_thin_p32)
    patch_size: int = 32  # [96]; chosen by the thinning criterion (the protocol's 64 for the other demos)
    split: str = "thinning"  # of every file: the halves whose held-out loss tracks the clean error
    noise2clean_epochs: int = 72  # 3 x epochs: at 48 its clean validation loss still improved (step 1053 of 1296)
    tv_tune_slices: int = 2  # validation slices the TV weight is chosen on (x 6 weights: 12 TV runs, as for the test)
    tv_lam_grid: tuple[float, ...] = DEFAULT_GRID

    def training(self, protocol: DemoProtocol) -> dict[str, Any]:
        """The CT runs' own :class:`TrainConfig` values (the protocol holds the shared ones)."""
        return dict(channels=1, patches_per_slice=self.patches_per_slice, epochs=self.epochs, beta_w=self.beta_w,
                    beta_r=self.beta_r, patch_size=self.patch_size)

    def method_epochs(self) -> dict[str, int]:
        """Epochs of the methods that train longer than ``epochs``."""
        return {"noise2clean": self.noise2clean_epochs}

    def describe(self, protocol: DemoProtocol) -> str:
        own = dataclasses.replace(protocol, patch_size=self.patch_size)
        return (f"reduced protocol: {protocol.geometry} (128^2, 3 mm pixels, 360 views), dose "
                f"{protocol.dose_fraction}, up to {self.train_slices_per_patient} training slices per patient, "
                f"{own.describe_training(self.patches_per_slice, self.epochs)}, "
                f"beta_w {self.beta_w:g}, beta_r {self.beta_r:g}, Noise2Clean {self.noise2clean_epochs} epochs, "
                f"TV weight chosen on {self.tv_tune_slices} validation slices' reference, "
                f"{self.split} split, "
                f"(paper: 512^2, UNet-32 depth 4, 96^2, batch 40, 100 epochs, Adam 1e-4, beta_r 0.5)")


@dataclass(frozen=True)
class SpectralDemoData:
    """The spectral (photon-counting) CT demo: counts simulated from the CT demo's patients.

    Sized for the issue's 10 minutes on 2 CPU cores (docs/spectral.md, 'The demo'): fewer training
    slices than the CT demo and 4 patches per slice per epoch for 8 epochs (104 steps per run; the
    held-out self-supervised loss still falls at the last epoch, see the docs), 4 channels (one per
    energy bin). The training slices carry iodine inserts of random concentration; the 12 test
    slices (2 scans each, independent noise) the inserts of 2, 5 and 10 mg/mL of the iodine check.
    """

    train_slices_per_patient: int = 5  # 11 patients -> 55 slices
    max_val_slices: int = 5
    max_test_slices: int = 12
    test_repeats: int = 2  # scans of each test slice (independent noise): ROIs for the iodine statistics
    train_random_inserts: int = 6  # iodine inserts of random concentration per training slice (where they fit)
    i0: float = 2.0e5  # photons per detector element (4 channels wide) and view, all energies
    edges_kev: tuple[float, ...] = (20.0, 33.2, 50.0, 70.0, 120.0)
    patches_per_slice: int = 4
    epochs: int = 8
    beta_w: float = 5e-6
    beta_r: float = 0.0
    #: the quantitative output keeps x_est's means in structures of this diameter and larger
    #: (tomoconsensus.local_means): the iodine inserts' 18 mm, the task's smallest quantified structure
    keep_means_mm: float = 18.0

    def training(self, protocol: DemoProtocol) -> dict[str, Any]:
        return dict(channels=len(self.edges_kev) - 1, patches_per_slice=self.patches_per_slice, epochs=self.epochs,
                    beta_w=self.beta_w, beta_r=self.beta_r)

    def simulation(self, split: str = "test") -> SpectralSimulation:
        """Validation and test slices: inserts of 2, 5 and 10 mg/mL; training slices: ``train_random_inserts``
        of random concentration (0.5-15 mg/mL, none at the test's values), as contrast-enhanced scans."""
        sim = SpectralSimulation(i0=self.i0, edges_kev=self.edges_kev)
        if split == "train":
            return dataclasses.replace(sim, insert_mg_per_ml=(), random_inserts=self.train_random_inserts)
        return sim

    def describe(self, protocol: DemoProtocol) -> str:
        bins = "-".join(f"{e:g}" for e in self.edges_kev)
        return (f"reduced protocol: ideal photon-counting CT on {protocol.geometry}, 120 kVp, bins {bins} keV, "
                f"{self.i0:g} photons per element and view, {self.train_slices_per_patient} training slices per "
                f"patient with up to {self.train_random_inserts} iodine inserts of random concentration, test "
                f"{self.max_test_slices} slices x {self.test_repeats} scans with inserts of 2/5/10 mg/mL, "
                f"{protocol.describe_training(self.patches_per_slice, self.epochs)}, 4-channel UNet, "
                f"beta_w {self.beta_w:g}, beta_r {self.beta_r:g}")


@dataclass(frozen=True)
class PETDemoData:
    """The PET demo: FDG-like prompts simulated from the CT demo's patients (docs/pet.md, 'Simulation')."""

    train_slices_per_patient: int = 8  # 11 patients -> 88 slices
    max_val_slices: int = 5
    max_test_slices: int = 12
    counts_per_slice: float = 3e5  # expected prompts per 2-D slice
    patches_per_slice: int = 4
    epochs: int = 12
    beta_w: float = 5e-6
    beta_r: float = 0.0

    def training(self, protocol: DemoProtocol) -> dict[str, Any]:
        return dict(channels=1, patches_per_slice=self.patches_per_slice, epochs=self.epochs, beta_w=self.beta_w,
                    beta_r=self.beta_r)

    def simulation(self) -> PETSimulation:
        return PETSimulation(counts_per_slice=self.counts_per_slice)

    def describe(self, protocol: DemoProtocol) -> str:
        sim = self.simulation()
        return (f"reduced protocol: 2-D PET simulated from CT anatomy, {sim.image_size}^2 @ {sim.pixel_size_mm:g} mm, "
                f"{sim.counts_per_slice:g} prompts per slice, {sim.lesions_per_slice} lesions of SUV "
                f"{sim.lesion_suv:g} per slice, binomial thinning, corrected FBP, "
                f"{self.train_slices_per_patient} training slices per patient, "
                f"{protocol.describe_training(self.patches_per_slice, self.epochs)}, "
                f"beta_w {self.beta_w:g}, beta_r {self.beta_r:g}")


@dataclass(frozen=True)
class DemoProtocol:
    """The reduced protocol (paper values in brackets)."""

    geometry: str = "demo-fanbeam"  # [ldct-fanbeam, 512^2, 2304 views]
    dose_fraction: float = 0.25  # [0.25]
    base_features: int = 16  # [32 CT, 64 MR]
    depth: int = 3  # [4]
    patch_size: int = 64  # [96]
    batch_size: int = 16  # [40]
    epochs: int = 30  # MR [100]; 30 (was 20): lower held-out self-supervised loss (docs/method.md)
    learning_rate: float = 3e-4  # [1e-4]; fewer steps need a larger step size
    max_train_slices: int = 6  # MR
    max_val_slices: int = 4  # MR
    max_test_slices: int = 4  # MR
    tv: TVConfig = TVConfig(lam=3e-4, n_iter=50)
    ct: CTDemoData = CTDemoData()
    mr: MRDemoData = MRDemoData()
    spectral: SpectralDemoData = SpectralDemoData()
    pet: PETDemoData = PETDemoData()

    def describe_training(self, patches_per_slice: int, epochs: int) -> str:
        return (f"UNet-{self.base_features} depth {self.depth}, {self.patch_size}^2 patches, batch {self.batch_size}, "
                f"{patches_per_slice} patches/slice/epoch, {epochs} epochs, Adam {self.learning_rate:g}, "
                f"best epoch by held-out self-supervised loss")

    def describe(self, modality: str = "ct") -> str:
        return DEMOS[modality].data(self).describe(self)


#: A seconds-long protocol for the CI smoke test.
QUICK = DemoProtocol(base_features=4, depth=2, patch_size=32, batch_size=4, epochs=1,
                     max_train_slices=2, max_val_slices=1, max_test_slices=1, tv=TVConfig(n_iter=2, power_iterations=2),
                     ct=CTDemoData(train_slices_per_patient=1, max_val_slices=1, max_test_slices=2,
                                   patches_per_slice=1, epochs=1, noise2clean_epochs=2, tv_tune_slices=1,
                                   tv_lam_grid=(3e-4, 3e-3)),
                     mr=MRDemoData(matrix=64, coils=6, virtual_coils=4, center_lines=12, train_orientations=1,
                                   patches_per_slice=4, train_slices_per_patient=1),
                     spectral=SpectralDemoData(train_slices_per_patient=1, max_val_slices=1, max_test_slices=1,
                                               patches_per_slice=1, epochs=1),
                     pet=PETDemoData(train_slices_per_patient=1, max_val_slices=1, max_test_slices=1,
                                     patches_per_slice=1, epochs=1))


def _subset(stack: ImageStack, keep, among=None) -> ImageStack:
    """The slices (of ``among``, default all) whose patient passes ``keep``."""
    idx = [i for i in (range(len(stack.hu)) if among is None else among)
           if i < len(stack.hu) and keep(stack.patient_ids[i])]
    return ImageStack(stack.hu[idx], stack.pixel_spacing_mm[idx], [stack.slice_ids[i] for i in idx],
                      [stack.patient_ids[i] for i in idx])


def patient_split(protocol: DemoProtocol) -> list[tuple[str, ImageStack, int, int]]:
    """(name, slices, max slices, seed offset) for train, val and test."""
    stack = read_images(CT_IMAGES)
    held_out = TEST_PATIENTS + VAL_PATIENTS
    return [("train", _subset(stack, lambda p: p not in held_out), protocol.max_train_slices, 0),
            ("val", _subset(stack, lambda p: p in VAL_PATIENTS), protocol.max_val_slices, 1),
            ("test", _subset(stack, lambda p: p in TEST_PATIENTS), protocol.max_test_slices, 2)]


def evenly_spaced(stack: ImageStack, per_patient: int) -> ImageStack:
    """Up to ``per_patient`` slices of each patient, evenly spaced through its (sorted) slices."""
    idx: list[int] = []
    for patient in dict.fromkeys(stack.patient_ids):
        own = [i for i, p in enumerate(stack.patient_ids) if p == patient]
        take = np.unique(np.linspace(0, len(own) - 1, min(per_patient, len(own))).round().astype(int))
        idx += [own[t] for t in take]
    return _subset(stack, lambda p: True, idx)


def ct_split(protocol: DemoProtocol) -> list[tuple[str, ImageStack, int]]:
    """(name, slices, seed offset) of the CT demo: train and validation patients from the TCIA series,
    test patients from another collection (COVID-19-NY-SBU) that no network sees."""
    series, ct = read_images(CT_SERIES), protocol.ct
    train = evenly_spaced(_subset(series, lambda p: p not in CT_VAL_PATIENTS), ct.train_slices_per_patient)
    val = evenly_spaced(_subset(series, lambda p: p in CT_VAL_PATIENTS), ct.max_val_slices)
    test = read_images(CT_IMAGES)
    return [("train", train, 0), ("val", val, 1), ("test", _subset(test, lambda p: True, range(ct.max_test_slices)), 2)]


def prepare_ct_demo(out_dir: Path, protocol: DemoProtocol, seed: int = 0, progress: bool = True,
                    device: str = "cpu") -> tuple[Path, Path, Path]:
    """Prepared train, validation and test files from the embedded slices (patient-level split).

    The FBP runs on the torch ``device``; the test file also holds the TV baseline, its weight chosen
    on the validation patient's reference (``tv_lam_choice``, ``tv_lam_grid``).
    """
    geom = fan_beam_geometry(protocol.geometry)
    modality = ct_modality(geom, device)
    paths, tuning = [], None
    for name, sub, offset in ct_split(protocol):
        path = out_dir / f"ct_{name}.h5"
        split = protocol.ct.split
        source = functools.partial(simulated_source, sub, geom, protocol.dose_fraction, seed + offset,
                                   f"embedded {(CT_IMAGES if name == 'test' else CT_SERIES).name}",
                                   counts=split == "thinning")  # same readings, each call
        if name == "val":
            tuning = tune_tv(source(), geom, protocol.tv, protocol.ct.tv_tune_slices, protocol.ct.tv_lam_grid)
            print(f"TV weight {tuning.lam:.3g} ({tuning.choice()}):\n{tuning.markdown()}")
        tv = dataclasses.replace(protocol.tv, lam=tuning.lam) if name == "test" else None
        print(write_ct(path, ct_modality(geom, device, split) if split != "views" else modality, source(),
                       seed + offset, tv, progress, tv_tuning=tuning if name == "test" else None))
        paths.append(path)
    return paths[0], paths[1], paths[2]


def mr_demo_objects(stack: ImageStack, mr: MRDemoData) -> list[np.ndarray]:
    """The embedded anatomy as T1-like magnitude images on the MR matrix (anti-aliased resize)."""
    return [resize(t1_like_magnitude(hu), (mr.matrix, mr.matrix), anti_aliasing=True) for hu in stack.hu]


def with_flips(objects: list[np.ndarray], ids: list[str], orientations: int) -> tuple[list[np.ndarray], list[str]]:
    """Each object in ``orientations`` (1, 2 or 4) flips, each flip a separate volume.

    Six training slices let the self-supervised losses fit the training aliasing within a few
    epochs; flipped copies, each with its own mask and noise, are new objects to the network (the
    aliasing still runs along the phase-encode axis). Only possible because the k-space is simulated.
    """
    flips = [("", lambda a: a), ("_lr", np.fliplr), ("_ud", np.flipud), ("_lrud", lambda a: np.flipud(np.fliplr(a)))]
    out = [(flip(o), i + suffix) for suffix, flip in flips[:orientations] for o, i in zip(objects, ids, strict=True)]
    return [o for o, _ in out], [i for _, i in out]


def mr_noise_std(mr: MRDemoData) -> float:
    """The MR demo's k-space noise std: ``noise_std`` ("simple"), or the one that gives the 12 embedded
    COVID-19-NY-SBU slices (the test anatomy) the SNR ``snr`` ("scanner"; one level for every split)."""
    if mr.simulation not in MR_SIMULATIONS:
        raise InputError("MRDemoData", "simulation", " or ".join(MR_SIMULATIONS), mr.simulation)
    if mr.simulation == "simple":
        return mr.noise_std
    return scanner_noise_std(mr.scanner(), mr_demo_objects(read_images(CT_IMAGES), mr))


def mr_demo_volumes(name: str, stack: ImageStack, max_slices: int, offset: int, mr: MRDemoData,
                    seed: int = 0, noise_std: float | None = None) -> list[KSpaceVolume]:
    """Simulated k-space of one split of :func:`patient_split`, one volume per patient.

    Training slices (the first ``max_slices``) also come flipped, each flip its own volume; the
    phase and noise are drawn from ``default_rng([seed, offset])``; ``noise_std`` (default
    :func:`mr_noise_std`) is the k-space noise std before pre-whitening.
    """
    objects, ids = mr_demo_objects(stack, mr), stack.patient_ids
    if name == "train":
        objects, ids = with_flips(objects[:max_slices], ids[:max_slices], mr.train_orientations)
    std = mr_noise_std(mr) if noise_std is None else noise_std
    rng = np.random.default_rng([seed, offset])
    if mr.simulation == "simple":
        return simulated_volumes(objects, ids, mr.coils, std, rng, mr.max_phase_radians, CT_IMAGES)
    return scanner_volumes(objects, ids, mr.scanner(), rng, mr.max_phase_radians, CT_IMAGES, std)


def mr_simulation_attributes(mr: MRDemoData, noise_std: float) -> dict[str, Any]:
    """What the prepared MR demo files record of the simulation (to simulate other anatomy alike)."""
    attrs = {"simulation": mr.simulation, "coils": mr.coils, "noise_std": noise_std, "matrix": mr.matrix,
             "max_phase_radians": mr.max_phase_radians, "t1_like_contrast": "tomoconsensus.mr.simulate.T1_LIKE_HU"}
    if mr.simulation == "scanner":
        attrs.update(mr.scanner().attributes(noise_std))
    return attrs


def mr_split(protocol: DemoProtocol) -> list[tuple[str, ImageStack, int, int]]:
    """(name, slices, max slices, seed offset) of the MR demo; test patients always the COVID ones.

    With ``mr.anatomy == "series"`` the training and validation anatomy is the CT demo's (11 + 1
    patients of the TCIA series, ``train_slices_per_patient`` each) instead of 3 + 1 COVID patients.
    """
    split = patient_split(protocol)
    if protocol.mr.anatomy != "series":
        return split
    series = read_images(CT_SERIES)
    train = evenly_spaced(_subset(series, lambda p: p not in CT_VAL_PATIENTS), protocol.mr.train_slices_per_patient)
    val = evenly_spaced(_subset(series, lambda p: p in CT_VAL_PATIENTS), protocol.max_val_slices)
    return [("train", train, len(train.hu), 0), ("val", val, len(val.hu), 1), split[2]]


def prepare_mr_demo(out_dir: Path, protocol: DemoProtocol, seed: int = 0, progress: bool = True,
                    device: str = "auto") -> tuple[Path, Path, Path]:
    """Prepared MR train, validation and test files (simulated k-space, patient-level split).

    ESPIRiT and SENSE run on ``device`` as in ``prepare mr`` (auto: the GPU when SigPy finds CuPy);
    the test file also holds the zero-filling baseline.
    """
    mr = protocol.mr
    modality = mr_modality(mr.acceleration, mr.center_lines, mr.sense_lambda, device)
    noise_std = mr_noise_std(mr)
    paths = []
    for name, sub, n, offset in mr_split(protocol):
        volumes = mr_demo_volumes(name, sub, n, offset, mr, seed, noise_std)
        # Training volumes hold exactly the slices to write (flips included); val/test volumes are
        # whole patients (the per-volume scale uses all their slices), of which n are written.
        path = out_dir / f"mr_{name}.h5"
        print(write_mr(path, modality, volumes, seed + offset, MR_SOURCE, max_slices=None if name == "train" else n,
                       zero_filled=name == "test", progress=progress,
                       keep_measurement=name != "train", virtual_coils=mr.virtual_coils,
                       simulation=mr_simulation_attributes(mr, noise_std)))
        paths.append(path)
    return paths[0], paths[1], paths[2]


def prepare_spectral_demo(out_dir: Path, protocol: DemoProtocol, seed: int = 0, progress: bool = True,
                          device: str = "cpu") -> tuple[Path, Path, Path]:
    """Count files (``spectral_<split>_counts.h5``, kept for the iodine truth) and prepared files of the
    CT demo's patients: fewer training slices, the same validation and test patients."""
    sd = protocol.spectral
    modality = spectral_modality(protocol.geometry, sd.edges_kev, device=device)
    paths = []
    for name, sub, offset in demo_splits(protocol, sd.train_slices_per_patient, sd.max_val_slices,
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


def spectral_quality(out_dir: Path, ev) -> tuple[str, list[tuple[str, bool]]]:
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


def demo_splits(protocol: DemoProtocol, per_patient: int, max_val: int, max_test: int):
    """(name, slices, seed offset) of the CT demo's patients with fewer slices (the PET and spectral demos)."""
    limits = {"val": max_val, "test": max_test}
    for name, sub, offset in ct_split(protocol):
        if name == "train":
            yield name, evenly_spaced(sub, per_patient), offset
        else:
            yield name, _subset(sub, lambda p: True, range(min(limits[name], len(sub.hu)))), offset


def prepare_pet_demo(out_dir: Path, protocol: DemoProtocol, seed: int = 0, progress: bool = True,
                     device: str = "cpu") -> tuple[Path, Path, Path]:
    """Prompt files and prepared files of the CT demo's patients; the test slices' lesions and tissue
    classes are kept (``pet_test_regions.npz``) for the lesion table."""
    pd, paths = protocol.pet, []
    sim = pd.simulation()
    for name, sub, offset in demo_splits(protocol, pd.train_slices_per_patient, pd.max_val_slices,
                                         pd.max_test_slices):
        stack, sims = simulate_prompts(sub.hu, sub.pixel_spacing_mm, sub.slice_ids, sub.patient_ids, sim, seed + offset)
        prompts = write_prompts(out_dir / f"pet_{name}_prompts.h5", stack)
        if name == "test":
            save_truth(out_dir / "pet_test_regions.npz", sims)
        path = out_dir / f"pet_{name}.h5"
        print(write_pet(path, pet_modality(stack, sim.image_size, sim.pixel_size_mm), stack, seed + offset, prompts,
                        progress=progress))
        paths.append(path)
    return paths[0], paths[1], paths[2]


def pet_quality(out_dir: Path, ev) -> tuple[str, list[tuple[str, bool]]]:
    """The PET demo's lesion table (report/pet_quality.md/.json): SUV bias, contrast recovery, background
    variability and CoV per method; checked: consensus lowers the background CoV of the FBP."""
    from tomoconsensus.data.prepared import read_prepared
    from tomoconsensus.pet.regions import quality_markdown, quality_table, slice_regions

    sim = PETSimulation()
    truth = load_truth(out_dir / "pet_test_regions.npz")
    rng = np.random.default_rng(0)
    regions = [slice_regions(t, sim.geometry(), sim.blur_fwhm_mm, rng) for t in truth]
    table = quality_table(ev.images, read_prepared(out_dir / "pet_test.h5").reference, regions)
    write_text_atomic(out_dir / "report" / "pet_quality.json", json.dumps(table, indent=2))
    markdown = quality_markdown(table)
    write_text_atomic(out_dir / "report" / "pet_quality.md", markdown)
    base = next(iter(ev.images))
    cov = {m: table[m]["background_cov"] for m in (base, "Consensus")}
    return markdown, [(f"Consensus background CoV < {base} background CoV ({100 * cov['Consensus']:.1f} % vs "
                       f"{100 * cov[base]:.1f} %)", cov["Consensus"] < cov[base])]


def demo_config(modality: str, protocol: DemoProtocol, device: str) -> TrainConfig:
    """The training configuration shared by the demo's three methods (method set per run)."""
    common = dict(base_features=protocol.base_features, depth=protocol.depth, patch_size=protocol.patch_size,
                  batch_size=protocol.batch_size, learning_rate=protocol.learning_rate, checkpoint_every_steps=100,
                  device=device)
    return TrainConfig(**{**common, **DEMOS[modality].data(protocol).training(protocol)})  # the modality's own win


def train_demo_runs(config: TrainConfig, train_path: Path, val_path: Path, test_path: Path, out_dir: Path,
                    device: str, progress: bool, dc_methods: tuple[str, ...] = (),
                    methods=METHODS, method_epochs: dict[str, int] | None = None
                    ) -> tuple[dict[str, Path], dict[str, Path]]:
    """Train each method once (reusing finished runs), denoise the test file per reported output.

    ``method_epochs`` gives methods other epochs than ``config.epochs`` (the CT demo's Noise2Clean).
    Outputs of ``dc_methods`` are pulled back onto the acquired data (data consistency, lambda chosen
    once per run on the validation file's held-out lines); their default outputs are also reported
    without it, as "<label> (no DC)".
    """
    results, runs, lamdas = {}, {}, {}
    for method, variant, label in methods:
        run_dir = out_dir / "runs" / method
        epochs = (method_epochs or {}).get(method, config.epochs)
        train_demo_run(dataclasses.replace(config, epochs=epochs), method, run_dir, train_path, val_path, out_dir,
                       progress)
        name = f"denoised_{method}{'_' + variant if variant else ''}"
        if method in dc_methods:
            if method not in lamdas:
                lamdas[method] = demo_lamda(method, run_dir, val_path, device)
            results[label] = demo_denoise(run_dir, test_path, out_dir / f"{name}_dc.h5", variant, device, progress,
                                          lamdas[method])
            if variant is None:
                results[f"{label} (no DC)"] = demo_denoise(run_dir, test_path, out_dir / f"{name}.h5", variant,
                                                           device, progress)
        else:
            results[label] = demo_denoise(run_dir, test_path, out_dir / f"{name}.h5", variant, device, progress)
        runs.setdefault(label, run_dir)  # training curves: one per method, under its first label
    return results, runs


def train_demo_run(config: TrainConfig, method: str, run_dir: Path, train_path: Path, val_path: Path, out_dir: Path,
                   progress: bool) -> None:
    """Train (or distil) one method unless its run is finished; an interrupted run is resumed."""
    if (run_dir / "model.pt").exists():
        print(f"{method}: finished run {run_dir}")
        return
    # resume an interrupted run; a folder killed before its first checkpoint (the demo's own) starts again
    resume = (run_dir / "checkpoint.pt").exists()
    options = {"resume": resume, "progress": progress, "overwrite": not resume and run_dir.exists()}
    run_config = dataclasses.replace(config, method=method)
    if method == "distill":
        print(distill(run_config, out_dir / "runs" / DISTILL_TEACHER, train_path, run_dir, val_path, **options))
    else:
        print(train(run_config, train_path, run_dir, val_path, **options))


def demo_lamda(method: str, run_dir: Path, val_path: Path, device: str) -> float:
    """The data-consistency weight of a run, chosen on the validation file's held-out lines."""
    from tomoconsensus.data.prepared import read_prepared
    from tomoconsensus.data_consistency import choose_lamda
    from tomoconsensus.learn.trained import load_trained, resolve_device

    dev = resolve_device(device)
    _, models = load_trained(run_dir, dev)
    lamda, _ = choose_lamda(method, models, read_prepared(val_path), dev)
    print(f"{method}: data consistency lambda {lamda:.3g} (held-out lines of {val_path.name})")
    return lamda


def demo_denoise(run_dir: Path, test_path: Path, out: Path, variant: str | None, device: str, progress: bool,
                 lamda: float | None = None, keep_means_mm: float | None = None) -> Path:
    """Denoise the test file with a run, unless ``out`` was written after the run's model (kept from before)."""
    model = run_dir / "model.pt"
    if not out.exists() or (model.exists() and out.stat().st_mtime < model.stat().st_mtime):
        print(denoise(run_dir, test_path, out, variant=variant, device=device, progress=progress,
                      data_consistency=lamda, keep_means_mm=keep_means_mm))
    return out


def kept_means_outputs(spec: DemoModality, protocol: DemoProtocol, out_dir: Path, test_path: Path, device: str,
                       progress: bool) -> dict[str, Path]:
    """The quantitative outputs of a demo (``spec.keep_means``): local means of x_est kept."""
    results = {}
    for method, label in spec.keep_means:
        diameter = spec.data(protocol).keep_means_mm
        results[label.format(diameter=f"{diameter:g}")] = demo_denoise(
            out_dir / "runs" / method, test_path, out_dir / f"denoised_{method}_means_{diameter:g}mm.h5", None,
            device, progress, keep_means_mm=diameter)
    return results


def run_demo(modality: str, out_dir: str | Path, protocol: DemoProtocol = DemoProtocol(), device: str = "auto",
             progress: bool = True, overwrite: bool = False) -> dict:
    """Prepare, train the three methods, denoise, evaluate and report; returns timings and metrics."""
    out_dir = Path(out_dir)
    claim_demo_folder(out_dir, modality, protocol, overwrite)
    start, cpu_start = time.perf_counter(), time.process_time()
    print(f"tomoconsensus demo ({modality.upper()}): {protocol.describe(modality)}")
    prepare = DEMOS[modality].prepare
    paths = [out_dir / f"{modality}_{name}.h5" for name in ("train", "val", "test")]
    fresh = not (out_dir / "runs").exists() and not any(p.exists() for p in paths)
    if all(p.exists() for p in paths):
        print(f"prepared files: {', '.join(map(str, paths))}")
        train_path, val_path, test_path = paths
    else:
        train_path, val_path, test_path = prepare(out_dir, protocol, progress=progress, device=device)
    data = DEMOS[modality].data(protocol)
    results, runs = train_demo_runs(demo_config(modality, protocol, device), train_path, val_path, test_path,
                                    out_dir, device, progress, DEMOS[modality].data_consistency,
                                    DEMOS[modality].methods, getattr(data, "method_epochs", dict)())
    results.update(kept_means_outputs(DEMOS[modality], protocol, out_dir, test_path, device, progress))
    ev = evaluate(test_path, results)
    files = write_report(ev, out_dir / "report", runs)
    summary = metrics_json(ev)  # method -> metric -> mean, std and per-slice values (the paired tests)
    print("\n" + metrics_markdown(ev))
    print(f"report: {', '.join(str(p) for p in files.values())}")
    story = check_story(summary["methods"], modality)
    if "noise2clean" in getattr(data, "method_epochs", dict)():
        story += verdict_lines([converged_check(out_dir / "runs" / "noise2clean", "Noise2Clean")])
    if DEMOS[modality].quality is not None:
        markdown, checks = DEMOS[modality].quality(out_dir, ev)
        print("\n" + markdown)
        story += verdict_lines(checks)
    seconds = time.perf_counter() - start
    print(f"demo ({modality.upper()}) finished in {seconds / 60:.1f} min ({protocol.describe(modality)})")
    if DEMOS[modality].max_minutes is not None:
        story.append(time_check(seconds, time.process_time() - cpu_start, DEMOS[modality].max_minutes, fresh))
    for line in story:
        print(line)
    if failed(story):
        print(f"why, measured: {DEMOS[modality].why_not}")
    return {"seconds": seconds, "summary": summary, "files": {k: str(v) for k, v in files.items()}, "story": story}


def time_check(seconds: float, cpu_seconds: float, max_minutes: float, fresh: bool) -> str:
    """The demo's wall time against its target, with what it depends on: the process's CPU time, the
    cores and the load average (other jobs on the machine slow the demo down); a demo that reused
    prepared files or runs is not a measurement."""
    cores, load = os.cpu_count(), os.getloadavg()[1]
    text = (f"demo wall time {seconds / 60:.1f} min <= {max_minutes:g} min (CPU time of this process "
            f"{cpu_seconds / 60:.1f} min on {cores} cores; load average over the last 5 min {load:.1f})")
    if not fresh:
        return f"NOT MEASURED (reused prepared files or runs): {text}"
    return f"{'holds' if seconds <= 60 * max_minutes else 'DOES NOT HOLD'}: {text}"


def check_story(metrics: dict, modality: str = "ct") -> list[str]:
    """The paper's claims on a demo's numbers (method -> metric -> {mean, std[, per_slice]}), each with its
    evidence (:func:`tomoconsensus.story.check_story`: paired tests over the test slices, targets)."""
    spec = DEMOS[modality]
    return check_claims(metrics, spec.baseline, spec.error, spec.claims)


@dataclass(frozen=True)
class DemoModality:
    """What differs between the CT and the MR demo (an entry of :data:`DEMOS`).

    Attributes
    ----------
    data : callable
        The modality's part of a :class:`DemoProtocol` (its training values and description).
    prepare : callable
        ``(out_dir, protocol, seed, progress, device)`` -> prepared train, validation and test files.
    baseline, error : str
        The report's linear reconstruction of all the data and its RMSE metric, for :func:`check_story`.
    claims : callable
        ``(means, baseline, error)`` -> the modality's own (claim, holds) checks.
    why_not : str
        Where failed claims are explained (README links the same sections).
    quality : callable, optional
        ``(out_dir, evaluation)`` -> (Markdown, checks): a modality's own table beyond the report.
    data_consistency : tuple of str
        Methods whose outputs are pulled back onto the acquired data (:mod:`tomoconsensus.data_consistency`).
    methods : tuple
        The (method, variant, label) outputs trained and reported (default :data:`METHODS`).
    max_minutes : float, optional
        The demo's wall-time target; checked (with CPU time and load) and printed when set.
    keep_means : tuple of (method, label)
        Quantitative outputs: the method's default output with x_est's local means kept in structures
        of ``data(protocol).keep_means_mm`` and larger (:mod:`tomoconsensus.local_means`); ``{diameter}``
        in the label is filled in.
    """

    data: Callable[[DemoProtocol], CTDemoData | MRDemoData | SpectralDemoData | PETDemoData]
    prepare: Callable[..., tuple[Path, Path, Path]]
    baseline: str
    error: str
    claims: Callable[[dict[str, dict[str, float]], str, str], list[tuple[str, bool]]]
    why_not: str
    quality: Callable[[Path, Any], tuple[str, list[tuple[str, bool]]]] | None = None
    data_consistency: tuple[str, ...] = ()
    methods: tuple[tuple[str, str | None, str], ...] = METHODS
    max_minutes: float | None = None
    keep_means: tuple[tuple[str, str], ...] = ()


#: The demos by modality name (``tomoconsensus demo ct|mr``).
DEMOS = {
    "ct": DemoModality(lambda p: p.ct, prepare_ct_demo, "FBP", "rmse_hu", ct_claims,
                       "docs/method.md, 'Consensus on unseen patients: what was measured, and the choices it led to'"),
    "mr": DemoModality(lambda p: p.mr, prepare_mr_demo, "Zero-filling", "rmse_1e-3", mr_claims,
                       "docs/method.md, 'MR at demo scale: why the self-supervised methods do not beat zero-filling "
                       "there'", data_consistency=("consensus", "noise2noise")),
    "pet": DemoModality(lambda p: p.pet, prepare_pet_demo, "FBP (all counts)", "rmse", ratio_claim(),
                        "docs/pet.md, 'The demo'", pet_quality),
    "spectral": DemoModality(lambda p: p.spectral, prepare_spectral_demo, "FBP per bin", "rmse_hu",
                             ratio_claim(", mean of the bins"), "docs/spectral.md, 'The demo'", spectral_quality,
                             max_minutes=10.0,
                             keep_means=(("consensus", "Consensus, means >= {diameter} mm kept"),)),
}

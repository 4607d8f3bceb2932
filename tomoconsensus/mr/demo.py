"""The MR demo: **simulated** multi-coil k-space from the shipped anatomy (``demo mr``).

Training and validation anatomy of the CT demo's TCIA series, tested on the COVID-19-NY-SBU slices (2
patients; :mod:`tomoconsensus.study.anatomy`). The objects are real anatomy given a T1-weighted-like
contrast, a smooth background phase and a 128^2 matrix; a ring of 15 birdcage-like elements with
correlated noise at an SNR of 30, a 2x oversampled readout and a noise scan, read back through the
scanner raw-data path (pre-whitening, oversampling removal), then compressed to 8 virtual coils
(:mod:`tomoconsensus.mr.simulate`, docs/mr-simulation.md). No openly licensed multi-slice multi-coil
k-space could be shipped (see tests/data/ATTRIBUTION.md). Then random 4x masks with the centre lines,
the two halves, ESPIRiT and SENSE run exactly as on measured data; baselines zero-filling and SENSE.
The protocol is ``demo.toml`` beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tomoconsensus.errors import InputError
from tomoconsensus.study.anatomy import (
    COVID,
    SERIES,
    SERIES_VAL_PATIENTS,
    Slices,
    covid_split,
    evenly_spaced,
    read_slices,
    subset,
)
from tomoconsensus.study.spec import Check, DemoSpec
from tomoconsensus.study.story import beats

#: How the MR demo's k-space was made (attribute ``source`` of its prepared files).
MR_SOURCE = "simulated from embedded TCIA slices (T1-like contrast, birdcage coils)"
#: The simulations of :class:`MRDemoData` (``simulation``).
MR_SIMULATIONS = ("scanner", "simple")


@dataclass(frozen=True)
class MRDemoData:
    """How the MR demo's k-space is simulated and undersampled (paper's NYU knee in brackets; values: demo.toml).

    Attributes
    ----------
    matrix : int
        Image matrix, pixels [640 x 368: 2x oversampled readout of 320].
    simulation : str
        ``scanner`` (correlated noise at ``snr``, oversampled readout, noise scan) or ``simple``
        (i.i.d. noise of ``noise_std``, no oversampling).
    coils, virtual_coils : int
        Receive elements [15]; virtual coils after compression before ESPIRiT (0: all coils).
    snr : float
        ``scanner``: SNR of the fully sampled RSS image in tissue (an assumption, docs/mr-simulation.md).
    noise_std : float
        ``simple``: per k-space sample; the brightest tissue (fat) has signal 1.
    coil_correlation : float
        ``scanner``: noise correlation of neighbouring elements (``coil_correlation ** ring distance``).
    readout_oversampling : int
        ``scanner`` [2].
    max_phase_radians : float
        Amplitude of the smooth background phase.
    acceleration, center_lines : float, int
        Random Cartesian undersampling [4x, 48 of 368 phase encodes].
    centre_split : bool
        Split the central lines between the halves too (:func:`tomoconsensus.mr.pipeline.mr_modality`); false:
        both halves keep them (their noise is then 1 % correlated). True was measured and fails
        (``benchmarks/mr_centre_split.py``, docs/mr-simulation.md).
    sense_lambda : float
        SENSE's Tikhonov weight (x_est).
    anatomy : str
        Training and validation anatomy: ``series`` (11 + 1 TCIA patients) or ``covid`` (3 + 1
        COVID-19-NY-SBU patients, the demo before 2026-12).
    train_slices_per_patient, train_orientations : int
        ``series``: evenly spaced slices per patient; each training slice also flipped (2: left-right, 4: both).
    max_train_slices, max_val_slices, max_test_slices : int
        ``covid`` training slices; validation and test slices (test: COVID-19-NY-SBU patients).
    """

    matrix: int
    simulation: str
    coils: int
    virtual_coils: int
    snr: float
    noise_std: float
    coil_correlation: float
    readout_oversampling: int
    max_phase_radians: float
    acceleration: float
    center_lines: int
    centre_split: bool
    sense_lambda: float
    anatomy: str
    train_slices_per_patient: int
    train_orientations: int
    max_train_slices: int
    max_val_slices: int
    max_test_slices: int

    def scanner(self):
        """The "scanner" simulation's settings."""
        from tomoconsensus.mr.simulate import ScannerSimulation

        return ScannerSimulation(self.coils, self.snr, None, self.coil_correlation, self.readout_oversampling)

    def describe(self, protocol) -> str:
        anatomy = (f"anatomy of {self.train_slices_per_patient} slices x 11 patients (TCIA series)"
                   if self.anatomy == "series" else "anatomy of 3 COVID-19-NY-SBU patients")
        coils = (f"simulated {self.coils}-coil k-space" if self.simulation == "simple" else
                 f"simulated {self.coils}-coil scanner k-space (SNR {self.snr:g}, correlated noise, "
                 f"{self.readout_oversampling}x readout)")
        if 0 < self.virtual_coils < self.coils:
            coils += f" compressed to {self.virtual_coils} virtual coils"
        return (f"reduced protocol: {coils}, {self.matrix}^2, {self.acceleration:g}x with "
                f"{self.center_lines} centre lines{' (split between the halves)' if self.centre_split else ''}, "
                f"training {anatomy} in {self.train_orientations} orientations, "
                f"{protocol.training.describe()} "
                f"(paper: 15-coil knee 640x368, 48 centre lines, UNet-64 depth 4, 96^2, batch 40, 100 epochs)")


def mr_demo_objects(stack: Slices, mr: MRDemoData) -> list[np.ndarray]:
    """The anatomy as T1-like magnitude images on the MR matrix (anti-aliased resize)."""
    from skimage.transform import resize

    from tomoconsensus.mr.simulate import t1_like_magnitude

    return [resize(t1_like_magnitude(hu), (mr.matrix, mr.matrix), anti_aliasing=True) for hu in stack.hu]


def with_flips(objects: list[np.ndarray], ids: list[str], orientations: int) -> tuple[list[np.ndarray], list[str]]:
    """Each object in ``orientations`` (1, 2 or 4) flips, each flip a separate volume.

    Flipped copies, each with its own mask and noise, are new objects to the network (the aliasing
    still runs along the phase-encode axis). Only possible because the k-space is simulated.
    """
    flips = [("", lambda a: a), ("_lr", np.fliplr), ("_ud", np.flipud), ("_lrud", lambda a: np.flipud(np.fliplr(a)))]
    out = [(flip(o), i + suffix) for suffix, flip in flips[:orientations] for o, i in zip(objects, ids, strict=True)]
    return [o for o, _ in out], [i for _, i in out]


def mr_noise_std(mr: MRDemoData) -> float:
    """The k-space noise std: ``noise_std`` ("simple"), or the one that gives the 12 embedded
    COVID-19-NY-SBU slices (the test anatomy) the SNR ``snr`` ("scanner"; one level for every split)."""
    from tomoconsensus.mr.simulate import scanner_noise_std

    if mr.simulation not in MR_SIMULATIONS:
        raise InputError("MRDemoData", "simulation", " or ".join(MR_SIMULATIONS), mr.simulation)
    if mr.simulation == "simple":
        return mr.noise_std
    return scanner_noise_std(mr.scanner(), mr_demo_objects(read_slices(COVID), mr))


def mr_demo_volumes(name: str, stack: Slices, max_slices: int, offset: int, mr: MRDemoData,
                    seed: int = 0, noise_std: float | None = None) -> list:
    """Simulated k-space (:class:`~tomoconsensus.mr.io.KSpaceVolume`) of one split, one volume per patient.

    Training slices (the first ``max_slices``) also come flipped, each flip its own volume; the
    phase and noise are drawn from ``default_rng([seed, offset])``; ``noise_std`` (default
    :func:`mr_noise_std`) is the k-space noise std before pre-whitening.
    """
    from tomoconsensus.mr.simulate import scanner_volumes, simulated_volumes

    objects, ids = mr_demo_objects(stack, mr), stack.patient_ids
    if name == "train":
        objects, ids = with_flips(objects[:max_slices], ids[:max_slices], mr.train_orientations)
    std = mr_noise_std(mr) if noise_std is None else noise_std
    rng = np.random.default_rng([seed, offset])
    if mr.simulation == "simple":
        return simulated_volumes(objects, ids, mr.coils, std, rng, mr.max_phase_radians, COVID)
    return scanner_volumes(objects, ids, mr.scanner(), rng, mr.max_phase_radians, COVID, std)


def mr_simulation_attributes(mr: MRDemoData, noise_std: float) -> dict[str, Any]:
    """What the prepared MR demo files record of the simulation (to simulate other anatomy alike)."""
    attrs = {"simulation": mr.simulation, "coils": mr.coils, "noise_std": noise_std, "matrix": mr.matrix,
             "max_phase_radians": mr.max_phase_radians, "t1_like_contrast": "tomoconsensus.mr.simulate.T1_LIKE_HU"}
    if mr.simulation == "scanner":
        attrs.update(mr.scanner().attributes(noise_std))
    return attrs


def mr_split(mr: MRDemoData) -> list[tuple[str, Slices, int, int]]:
    """(name, slices, max slices, seed offset) of the MR demo; test patients always the COVID ones.

    With ``anatomy == "series"`` the training and validation anatomy is the CT demo's (11 + 1
    patients of the TCIA series, ``train_slices_per_patient`` each) instead of 3 + 1 COVID patients.
    """
    limits = {"train": mr.max_train_slices, "val": mr.max_val_slices, "test": mr.max_test_slices}
    split = [(name, sub, limits[name], offset) for name, sub, offset in covid_split()]
    if mr.anatomy != "series":
        return split
    series = read_slices(SERIES)
    train = evenly_spaced(subset(series, lambda p: p not in SERIES_VAL_PATIENTS), mr.train_slices_per_patient)
    val = evenly_spaced(subset(series, lambda p: p in SERIES_VAL_PATIENTS), mr.max_val_slices)
    return [("train", train, len(train.hu), 0), ("val", val, len(val.hu), 1), split[2]]


def prepare_mr_demo(out_dir: Path, protocol, seed: int = 0, progress: bool = True,
                    device: str = "auto") -> tuple[Path, Path, Path]:
    """Prepared MR train, validation and test files (simulated k-space, patient-level split).

    ESPIRiT and SENSE run on ``device`` as in ``prepare mr`` (auto: the GPU when SigPy finds CuPy);
    the test file also holds the zero-filling baseline.
    """
    from tomoconsensus.mr.pipeline import mr_modality, write_mr

    mr: MRDemoData = protocol.data
    modality = mr_modality(mr.acceleration, mr.center_lines, mr.sense_lambda, device, mr.centre_split)
    noise_std = mr_noise_std(mr)
    paths = []
    for name, sub, n, offset in mr_split(mr):
        volumes = mr_demo_volumes(name, sub, n, offset, mr, seed, noise_std)
        # Training volumes hold exactly the slices to write (flips included); val/test volumes are
        # whole patients (the per-volume scale uses all their slices), of which n are written.
        path = out_dir / f"mr_{name}.h5"
        print(write_mr(path, modality, volumes, seed + offset, MR_SOURCE, max_slices=None if name == "train" else n,
                       zero_filled=name == "test", progress=progress,
                       keep_measurement=name != "train", virtual_coils=mr.virtual_coils or None,
                       simulation=mr_simulation_attributes(mr, noise_std)))
        paths.append(path)
    return paths[0], paths[1], paths[2]


def mr_claims(metrics: dict, base: str, err: str) -> list[Check]:
    """MR: the self-supervised methods against SENSE (the paper's x_est) as well (issue 14)."""
    return [beats(metrics, a, "SENSE", err, "RMSE", True) for a in ("Consensus", "Noise2Noise")] + [
        beats(metrics, "Consensus", "SENSE", "ssim", "SSIM", False)]


DEMO = DemoSpec(MRDemoData, Path(__file__).with_name("demo.toml"), prepare_mr_demo, "Zero-filling", "rmse_1e-3",
                mr_claims, "docs/method.md, 'MR at demo scale: why the self-supervised methods do not beat "
                "zero-filling there'", data_consistency=("consensus", "noise2noise"))

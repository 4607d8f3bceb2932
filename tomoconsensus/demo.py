"""The one-command demo: the whole method on embedded data, with a reduced protocol.

Both modalities use the 12 clinical CT slices shipped in the package (TCIA COVID-19-NY-SBU,
6 patients, CC BY 4.0) with the same patient-level split: 3 patients (6 slices) train, 1 patient
(2 slices) validates, 2 patients (4 slices) test.

* CT: quarter-dose sinograms are simulated on the ``demo-fanbeam`` geometry (LDCT distances and
  fan angle, 128^2 grid of 3 mm pixels); baselines FBP (all views) and TV.
* MR: **simulated** 8-coil k-space (:mod:`tomoconsensus.mr.simulate`). The objects are the same
  real anatomy, given a T1-weighted-like contrast, a smooth background phase and 128^2 matrix;
  SigPy birdcage coils, complex Gaussian noise. No openly licensed multi-slice multi-coil k-space
  could be shipped (see tests/data/ATTRIBUTION.md). Then random 4x masks with the centre lines,
  the two halves, ESPIRiT and SENSE run exactly as on measured data; baselines zero-filling and
  SENSE.

Consensus, Noise2Noise and Noise2Clean are trained with a smaller UNet and fewer steps than the
paper (stated in the output); each run keeps the epoch with the lowest held-out self-supervised
loss (no reference used); then all are evaluated against the baselines on the test patients.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from skimage.transform import resize

from tomoconsensus.ct.io import ImageStack, read_images
from tomoconsensus.ct.sources import simulated_slices
from tomoconsensus.ct.split import CTModality
from tomoconsensus.ct.tv import TVConfig, tv_reconstruct
from tomoconsensus.data.prepared import write_prepared
from tomoconsensus.denoise import denoise
from tomoconsensus.evaluate import evaluate
from tomoconsensus.geometry import load_geometry
from tomoconsensus.mr.io import KSpaceVolume
from tomoconsensus.mr.recon import sigpy_device
from tomoconsensus.mr.simulate import simulated_volumes, t1_like_magnitude
from tomoconsensus.mr.sources import undersampled_slices
from tomoconsensus.mr.split import MRModality
from tomoconsensus.report import metrics_markdown, write_report
from tomoconsensus.train import TrainConfig, train

EMBEDDED = Path(__file__).parent / "embedded"
CT_IMAGES = EMBEDDED / "tcia_covid19_ny_sbu_axial_hu.npz"
TEST_PATIENTS = ("A056642", "A058062")
VAL_PATIENTS = ("A048383",)
#: Where the demo's failed claims are explained (README links the same sections).
WHY_NOT = {"ct": "docs/method.md, 'Small training sets: two effects to know'",
           "mr": "docs/method.md, 'MR at demo scale: why the self-supervised methods do not beat zero-filling there'"}
METHODS = (("consensus", "Consensus"), ("noise2noise", "Noise2Noise"), ("noise2clean", "Noise2Clean"))


@dataclass(frozen=True)
class MRDemoData:
    """How the MR demo's k-space is simulated and undersampled (paper's NYU knee in brackets)."""

    matrix: int = 128  # [640 x 368]
    coils: int = 8  # [15]
    noise_std: float = 0.02  # per k-space sample; the brightest tissue (fat) has signal 1
    max_phase_radians: float = 1.0
    acceleration: float = 4.0  # [4]
    center_lines: int = 16  # [48 of 368 phase encodes: the same fraction, 13 %]
    sense_lambda: float = 0.01
    beta_w: float = 1e-6  # [1e-6]
    beta_r: float = 5.0  # [5]
    train_orientations: int = 4  # each training slice also flipped left-right, up-down and both
    patches_per_slice: int = 10  # [40]; 6 slices x 4 orientations x 10 = the CT demo's patches per epoch


@dataclass(frozen=True)
class DemoProtocol:
    """The reduced protocol (paper values in brackets)."""

    geometry: str = "demo-fanbeam"  # [ldct-fanbeam, 512^2, 2304 views]
    dose_fraction: float = 0.25  # [0.25]
    base_features: int = 16  # [32 CT, 64 MR]
    depth: int = 3  # [4]
    patch_size: int = 64  # [96]
    batch_size: int = 16  # [40]
    patches_per_slice: int = 40  # [40]
    epochs: int = 20  # [100]
    learning_rate: float = 3e-4  # [1e-4]; fewer steps need a larger step size
    max_train_slices: int = 6
    max_val_slices: int = 2
    max_test_slices: int = 4
    tv: TVConfig = TVConfig(lam=3e-4, n_iter=50)
    mr: MRDemoData = MRDemoData()

    def describe_training(self, patches_per_slice: int) -> str:
        return (f"UNet-{self.base_features} depth {self.depth}, {self.patch_size}^2 patches, batch {self.batch_size}, "
                f"{patches_per_slice} patches/slice/epoch, {self.epochs} epochs, Adam {self.learning_rate:g}, "
                f"best epoch by held-out self-supervised loss")

    def describe(self, modality: str = "ct") -> str:
        if modality == "mr":
            mr = self.mr
            return (f"reduced protocol: simulated {mr.coils}-coil k-space, {mr.matrix}^2, {mr.acceleration:g}x with "
                    f"{mr.center_lines} centre lines, training slices in {mr.train_orientations} orientations, "
                    f"{self.describe_training(mr.patches_per_slice)} "
                    f"(paper: 15-coil knee 640x368, 48 centre lines, UNet-64 depth 4, 96^2, batch 40, 100 epochs)")
        return (f"reduced protocol: {self.geometry} (128^2, 3 mm pixels, 360 views), dose {self.dose_fraction}, "
                f"{self.describe_training(self.patches_per_slice)} "
                f"(paper: 512^2, UNet-32 depth 4, 96^2, batch 40, 100 epochs, Adam 1e-4)")


#: A seconds-long protocol for the CI smoke test.
QUICK = DemoProtocol(base_features=4, depth=2, patch_size=32, batch_size=4, patches_per_slice=4, epochs=1,
                     max_train_slices=2, max_val_slices=1, max_test_slices=1, tv=TVConfig(n_iter=2, power_iterations=2),
                     mr=MRDemoData(matrix=64, coils=4, center_lines=12, train_orientations=1, patches_per_slice=4))


def _subset(stack: ImageStack, keep) -> ImageStack:
    idx = [i for i, p in enumerate(stack.patient_ids) if keep(p)]
    return ImageStack(stack.hu[idx], stack.pixel_spacing_mm[idx], [stack.slice_ids[i] for i in idx],
                      [stack.patient_ids[i] for i in idx])


def patient_split(protocol: DemoProtocol) -> list[tuple[str, ImageStack, int, int]]:
    """(name, slices, max slices, seed offset) for train, val and test."""
    stack = read_images(CT_IMAGES)
    held_out = TEST_PATIENTS + VAL_PATIENTS
    return [("train", _subset(stack, lambda p: p not in held_out), protocol.max_train_slices, 0),
            ("val", _subset(stack, lambda p: p in VAL_PATIENTS), protocol.max_val_slices, 1),
            ("test", _subset(stack, lambda p: p in TEST_PATIENTS), protocol.max_test_slices, 2)]


def prepare_ct_demo(out_dir: Path, protocol: DemoProtocol, seed: int = 0,
                    progress: bool = True) -> tuple[Path, Path, Path]:
    """Prepared train, validation and test files from the embedded slices (patient-level split)."""
    geom = load_geometry(protocol.geometry)
    modality = CTModality(geom)
    attrs = {"dose_fraction": protocol.dose_fraction, "reference_kind": "noiseless-fbp",
             "source": "embedded TCIA slices"}
    tv = {"tv": lambda sino: modality.to_units(tv_reconstruct(sino, geom, protocol.tv))}
    paths = []
    for name, sub, n, offset in patient_split(protocol):
        n = min(n, len(sub.hu))
        path = out_dir / f"ct_{name}.h5"
        slices = islice(simulated_slices(sub, geom, protocol.dose_fraction, seed + offset), n)
        print(write_prepared(path, modality, slices, n, seed + offset, attrs, tv if name == "test" else {}, progress))
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


def mr_demo_volumes(name: str, stack: ImageStack, max_slices: int, offset: int, mr: MRDemoData,
                    seed: int = 0) -> list[KSpaceVolume]:
    """Simulated k-space of one split of :func:`patient_split`, one volume per patient.

    Training slices (the first ``max_slices``) also come flipped, each flip its own volume; the
    phase and noise are drawn from ``default_rng([seed, offset])``.
    """
    objects, ids = mr_demo_objects(stack, mr), stack.patient_ids
    if name == "train":
        objects, ids = with_flips(objects[:max_slices], ids[:max_slices], mr.train_orientations)
    return simulated_volumes(objects, ids, mr.coils, mr.noise_std, np.random.default_rng([seed, offset]),
                             mr.max_phase_radians, CT_IMAGES)


def prepare_mr_demo(out_dir: Path, protocol: DemoProtocol, seed: int = 0, progress: bool = True,
                    device: str = "auto") -> tuple[Path, Path, Path]:
    """Prepared MR train, validation and test files (simulated k-space, patient-level split).

    ESPIRiT and SENSE run on the GPU when SigPy finds CuPy and ``device`` is not ``cpu``.
    """
    mr = protocol.mr
    sigpy_dev = -1 if device == "cpu" else sigpy_device("auto")
    modality = MRModality(mr.acceleration, mr.center_lines, mr.sense_lambda, device=sigpy_dev)
    paths = []
    for name, sub, n, offset in patient_split(protocol):
        volumes = mr_demo_volumes(name, sub, n, offset, mr, seed)
        # Training volumes hold exactly the slices to write (flips included); val/test volumes are
        # whole patients (the per-volume scale uses all their slices), of which n are written.
        n = sum(len(v.kspace) for v in volumes) if name == "train" else min(n, len(sub.hu))
        scales: dict[str, float] = {}
        slices = islice(undersampled_slices(volumes, mr.acceleration, mr.center_lines, seed + offset, scales=scales,
                                            device=sigpy_dev), n)
        attrs = {"source": "simulated from embedded TCIA slices (T1-like contrast, birdcage coils)",
                 "coils": mr.coils, "noise_std": mr.noise_std, "scale_factors": scales}
        baselines = {"zero_filled": modality.zero_filled} if name == "test" else {}
        path = out_dir / f"mr_{name}.h5"
        print(write_prepared(path, modality, slices, n, seed + offset, attrs, baselines, progress))
        paths.append(path)
    return paths[0], paths[1], paths[2]


def run_demo(modality: str, out_dir: str | Path, protocol: DemoProtocol = DemoProtocol(), device: str = "auto",
             progress: bool = True) -> dict:
    """Prepare, train the three methods, denoise, evaluate and report; returns timings and metrics."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"tomoconsensus demo ({modality.upper()}): {protocol.describe(modality)}")
    mr = modality == "mr"
    if mr:
        train_path, val_path, test_path = prepare_mr_demo(out_dir, protocol, progress=progress, device=device)
    else:
        train_path, val_path, test_path = prepare_ct_demo(out_dir, protocol, progress=progress)
    config = TrainConfig(channels=2 if mr else 1, base_features=protocol.base_features,
                         depth=protocol.depth, patch_size=protocol.patch_size, batch_size=protocol.batch_size,
                         patches_per_slice=protocol.mr.patches_per_slice if mr else protocol.patches_per_slice,
                         epochs=protocol.epochs,
                         learning_rate=protocol.learning_rate, checkpoint_every_steps=100, device=device,
                         **({"beta_w": protocol.mr.beta_w, "beta_r": protocol.mr.beta_r} if mr else {}))
    results, runs = {}, {}
    for method, label in METHODS:
        run_dir = out_dir / "runs" / method
        if (run_dir / "model.pt").exists():
            print(f"{method}: reusing finished run {run_dir}")
        else:
            resume = (run_dir / "checkpoint.pt").exists()
            print(train(dataclasses.replace(config, method=method), train_path, run_dir, val_path, resume=resume,
                        progress=progress))
        results[label] = out_dir / f"denoised_{method}.h5"
        print(denoise(run_dir, test_path, results[label], device=device, progress=progress))
        runs[label] = run_dir
    ev = evaluate(test_path, results)
    files = write_report(ev, out_dir / "report", runs)
    seconds = time.perf_counter() - start
    summary = ev.summary()
    print("\n" + metrics_markdown(ev))
    print(f"report: {', '.join(str(p) for p in files.values())}")
    print(f"demo ({modality.upper()}) finished in {seconds / 60:.1f} min ({protocol.describe(modality)})")
    story = check_story(summary, modality)
    for line in story:
        print(line)
    if any(line.startswith("DOES NOT HOLD") for line in story):
        print(f"why, measured: {WHY_NOT[modality]}")
    return {"seconds": seconds, "summary": summary, "files": {k: str(v) for k, v in files.items()}, "story": story}


def check_story(summary: dict, modality: str = "ct") -> list[str]:
    """The paper's claims, checked on these numbers (reported honestly either way)."""
    m = {k: {n: v["mean"] for n, v in metrics.items()} for k, metrics in summary.items()}
    base, err = ("Zero-filling", "rmse_1e-3") if modality == "mr" else ("FBP", "rmse_hu")
    checks = [(f"{a} RMSE < {base} RMSE", m[a][err] < m[base][err]) for a in ("Consensus", "Noise2Noise")]
    checks += [(f"{a} SSIM > {base} SSIM", m[a]["ssim"] > m[base]["ssim"]) for a in ("Consensus", "Noise2Noise")]
    if modality == "mr":
        checks += [(f"{a} RMSE < SENSE RMSE", m[a][err] < m["SENSE"][err]) for a in ("Consensus", "Noise2Noise")]
    checks.append(("Consensus SSIM >= Noise2Noise SSIM", m["Consensus"]["ssim"] >= m["Noise2Noise"]["ssim"]))
    return [f"{'holds' if ok else 'DOES NOT HOLD'}: {text}" for text, ok in checks]

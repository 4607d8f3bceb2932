"""The one-command demo: the whole method on embedded data, with a reduced protocol.

CT: 12 clinical slices (TCIA COVID-19-NY-SBU, 6 patients, CC BY 4.0) are shipped in the package.
Quarter-dose sinograms are simulated on the ``demo-fanbeam`` geometry (LDCT distances and fan
angle, 128^2 grid of 3 mm pixels). Patient-level split: 3 patients (6 slices) train, 1 patient
(2 slices) validates, 2 patients (4 slices) test. Consensus, Noise2Noise and Noise2Clean are
trained with a smaller UNet and fewer steps than the paper (stated in the output); each run keeps
the epoch with the lowest held-out self-supervised loss (no reference used); then all are
evaluated against FBP and TV on the test patients.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from tomoconsensus.ct.io import ImageStack, read_images
from tomoconsensus.ct.sources import simulated_slices
from tomoconsensus.ct.split import CTModality
from tomoconsensus.ct.tv import TVConfig, tv_reconstruct
from tomoconsensus.data.prepared import write_prepared
from tomoconsensus.denoise import denoise
from tomoconsensus.evaluate import evaluate
from tomoconsensus.geometry import load_geometry
from tomoconsensus.report import metrics_markdown, write_report
from tomoconsensus.train import TrainConfig, train

EMBEDDED = Path(__file__).parent / "embedded"
CT_IMAGES = EMBEDDED / "tcia_covid19_ny_sbu_axial_hu.npz"
TEST_PATIENTS = ("A056642", "A058062")
VAL_PATIENTS = ("A048383",)


@dataclass(frozen=True)
class DemoProtocol:
    """The reduced protocol (paper values in brackets)."""

    geometry: str = "demo-fanbeam"  # [ldct-fanbeam, 512^2, 2304 views]
    dose_fraction: float = 0.25  # [0.25]
    base_features: int = 16  # [32]
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

    def describe(self) -> str:
        return (f"reduced protocol: {self.geometry} (128^2, 3 mm pixels, 360 views), dose {self.dose_fraction}, "
                f"UNet-{self.base_features} depth {self.depth}, {self.patch_size}^2 patches, batch {self.batch_size}, "
                f"{self.patches_per_slice} patches/slice/epoch, {self.epochs} epochs, Adam {self.learning_rate:g}, "
                f"best epoch by held-out self-supervised loss "
                f"(paper: 512^2, UNet-32 depth 4, 96^2, batch 40, 100 epochs, Adam 1e-4)")


#: A seconds-long protocol for the CI smoke test.
QUICK = DemoProtocol(base_features=4, depth=2, patch_size=32, batch_size=4, patches_per_slice=4, epochs=1,
                     max_train_slices=2, max_val_slices=1, max_test_slices=1, tv=TVConfig(n_iter=2, power_iterations=2))


def _subset(stack: ImageStack, keep) -> ImageStack:
    idx = [i for i, p in enumerate(stack.patient_ids) if keep(p)]
    return ImageStack(stack.hu[idx], stack.pixel_spacing_mm[idx], [stack.slice_ids[i] for i in idx],
                      [stack.patient_ids[i] for i in idx])


def prepare_ct_demo(out_dir: Path, protocol: DemoProtocol, seed: int = 0,
                    progress: bool = True) -> tuple[Path, Path, Path]:
    """Prepared train, validation and test files from the embedded slices (patient-level split)."""
    geom = load_geometry(protocol.geometry)
    stack = read_images(CT_IMAGES)
    held_out = TEST_PATIENTS + VAL_PATIENTS
    modality = CTModality(geom)
    attrs = {"dose_fraction": protocol.dose_fraction, "reference_kind": "noiseless-fbp", "source": "embedded TCIA slices"}
    tv = {"tv": lambda sino: modality.to_units(tv_reconstruct(sino, geom, protocol.tv))}
    paths = []
    for name, sub, n, seed_offset, baselines in (
            ("train", _subset(stack, lambda p: p not in held_out), protocol.max_train_slices, 0, {}),
            ("val", _subset(stack, lambda p: p in VAL_PATIENTS), protocol.max_val_slices, 1, {}),
            ("test", _subset(stack, lambda p: p in TEST_PATIENTS), protocol.max_test_slices, 2, tv)):
        n = min(n, len(sub.hu))
        path = out_dir / f"ct_{name}.h5"
        slices = islice(simulated_slices(sub, geom, protocol.dose_fraction, seed + seed_offset), n)
        print(write_prepared(path, modality, slices, n, seed + seed_offset, attrs, baselines, progress))
        paths.append(path)
    return paths[0], paths[1], paths[2]


def run_ct_demo(out_dir: str | Path, protocol: DemoProtocol = DemoProtocol(), device: str = "auto",
                progress: bool = True) -> dict:
    """Prepare, train the three methods, denoise, evaluate and report; returns timings and metrics."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"tomoconsensus demo (CT): {protocol.describe()}")
    train_path, val_path, test_path = prepare_ct_demo(out_dir, protocol, progress=progress)
    config = TrainConfig(channels=1, base_features=protocol.base_features, depth=protocol.depth,
                         patch_size=protocol.patch_size, batch_size=protocol.batch_size,
                         patches_per_slice=protocol.patches_per_slice, epochs=protocol.epochs,
                         learning_rate=protocol.learning_rate, checkpoint_every_steps=100, device=device)
    results, runs = {}, {}
    for method, label in (("consensus", "Consensus"), ("noise2noise", "Noise2Noise"), ("noise2clean", "Noise2Clean")):
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
    print(f"demo finished in {seconds / 60:.1f} min ({protocol.describe()})")
    story = check_story(summary)
    for line in story:
        print(line)
    return {"seconds": seconds, "summary": summary, "files": {k: str(v) for k, v in files.items()}, "story": story}


def check_story(summary: dict) -> list[str]:
    """The paper's claims, checked on these numbers (reported honestly either way)."""
    m = {k: {n: v["mean"] for n, v in metrics.items()} for k, metrics in summary.items()}
    checks = [
        ("Consensus RMSE < FBP RMSE", m["Consensus"]["rmse_hu"] < m["FBP"]["rmse_hu"]),
        ("Noise2Noise RMSE < FBP RMSE", m["Noise2Noise"]["rmse_hu"] < m["FBP"]["rmse_hu"]),
        ("Consensus SSIM > FBP SSIM", m["Consensus"]["ssim"] > m["FBP"]["ssim"]),
        ("Noise2Noise SSIM > FBP SSIM", m["Noise2Noise"]["ssim"] > m["FBP"]["ssim"]),
        ("Consensus SSIM >= Noise2Noise SSIM", m["Consensus"]["ssim"] >= m["Noise2Noise"]["ssim"]),
    ]
    return [f"{'holds' if ok else 'DOES NOT HOLD'}: {text}" for text, ok in checks]


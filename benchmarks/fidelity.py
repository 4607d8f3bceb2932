"""Benchmark: the paper's CT protocol (Wu et al. 2019, Table 1) on the clinical series in ../shared.

Patient-level split of ../shared/data/ct/tcia_series (one series per patient): 2 test patients (the
two abdominal series, like the paper's abdominal test set), 1 validation patient (model selection on
its *noisy* halves only), 8 training patients. Quarter-dose sinograms are simulated on the
``ldct-fanbeam`` geometry (2304 views, 736 channels), each method is trained with the paper's
settings (``examples/ct/train.toml``: UNet-32 depth 4, 96^2 patches, batch 40, 40 patches per slice
per epoch, 100 epochs, Adam 1e-4, beta_w 5e-6, beta_r 0.5), the test patients are denoised and
evaluated (RMSE in HU over the image; SSIM within [-160, 240] HU; mean +- std over test slices).

It chains the package's own steps, as ``examples/ct/run_paper_protocol.sh`` does:
``tomoconsensus.ct.pipeline`` (prepare), ``train``, ``denoise``, ``evaluate``.

Full scale (a GPU; preparation ~5 s per slice on 2 CPU cores, 40 slices per patient)::

    .venv/bin/python benchmarks/fidelity.py --work fidelity_run

Smoke scale (what a shared CPU allows; minutes)::

    .venv/bin/python benchmarks/fidelity.py --image-size 128 --slices-per-patient 2 --max-steps 20 \\
        --base-features 8 --patch-size 64 --batch-size 8

Writes benchmarks/results/fidelity.json and benchmarks/results/fidelity.md (the markdown table that
docs/reproducing.md quotes). Without ../shared it prints why and exits 0 without writing.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tomoconsensus.atomic import write_text_atomic
from tomoconsensus.ct.io import ImageStack, read_images
from tomoconsensus.ct.pipeline import CT_SPLITS, ct_modality, simulated_source, write_ct
from tomoconsensus.ct.protocol import geometry_from_toml_text, load_geometry
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.denoising import denoise
from tomoconsensus.evaluation import evaluate
from tomoconsensus.learn.config import load_train_config
from tomoconsensus.learn.loop import train
from tomoconsensus.tomo.geometry import FanBeamGeometry
from tomoconsensus.tomo.tv import TVConfig

from common import RESULTS, write_result

ROOT = Path(__file__).resolve().parents[1]
SERIES = ROOT.parent / "shared" / "data" / "ct" / "tcia_series"
PAPER_CONFIG = ROOT / "examples" / "ct" / "train.toml"
TEST_PATIENTS = ("KiTS-00072", "C3L-00189")  # the two abdominal series (paper: abdomen)
VAL_PATIENTS = ("ACRIN-FLT-Breast_001",)
FIELD_OF_VIEW_MM = 384.0  # ldct-fanbeam: 512 x 0.75 mm
DOSE_FRACTION = 0.25  # quarter dose
#: Wu et al. 2019, Table 1 (mean +- std over test slices; SSIM in %).
PAPER_TABLE1 = {"FBP": {"rmse_hu": (27.6, 5.3), "ssim": (81.5, 4.7)},
                "TV": {"rmse_hu": (36.9, 4.4), "ssim": (81.8, 3.5)},
                "Noise2Noise": {"rmse_hu": (17.4, 3.2), "ssim": (84.2, 4.6)},
                "Consensus": {"rmse_hu": (18.4, 2.9), "ssim": (87.1, 3.4)},
                "Noise2Clean": {"rmse_hu": (14.7, 2.8), "ssim": (87.7, 3.3)}}
#: (label, method, denoise variant): both Noise2Noise outputs (issue 13): f((x1+x2)/2) and the paper's likely f(x1).
#: Consensus both as the paper's z = (f1(x1) + f2(x2))/2 and as the package's default output (both networks
#: applied to (x1+x2)/2, averaged; docs/method.md), from the same trained run.
OUTPUTS = (("Noise2Noise", "noise2noise", "mean"), ("Noise2Noise f(x1)", "noise2noise", "f1"),
           ("Consensus", "consensus", "z"), ("Consensus mean", "consensus", "mean"),
           ("Noise2Clean", "noise2clean", "full"))
COLUMNS = ("FBP", "TV", "Noise2Noise", "Noise2Noise f(x1)", "Consensus", "Consensus mean", "Noise2Clean")


@dataclass(frozen=True)
class Scale:
    """How much of the paper's protocol to run (paper values are the defaults)."""

    image_size: int = 512  # pixels; the grid always spans 384 mm (0.75 mm at 512)
    n_views: int = 2304
    slices_per_patient: int = 0  # training slices per patient, 0: all (up to 40 per series here; paper: 50)
    eval_slices_per_patient: int | None = None  # validation and test slices per patient; None: as training
    train_patients: int = 8
    epochs: int = 100
    max_steps: int = 0  # 0: run the epochs
    base_features: int = 32
    depth: int = 4
    patch_size: int = 96
    batch_size: int = 40
    patches_per_slice: int = 40
    learning_rate: float = 1e-4
    beta_r: float = 0.5
    tv: bool = False
    tv_iter: int = 50
    device: str = "auto"
    seed: int = 0
    split: str = "views"  # odd/even views (the paper's) or "thinning" of every reading's counts (issue 21)

    def describe(self) -> str:
        count = lambda n: "all slices" if n == 0 else f"{n} slices"  # noqa: E731
        slices = count(self.slices_per_patient)
        if self.eval_slices_per_patient not in (None, self.slices_per_patient):
            slices += f" (validation and test: {count(self.eval_slices_per_patient)})"
        steps = f"{self.epochs} epochs" if self.max_steps == 0 else f"{self.max_steps} steps"
        paper = self == dataclasses.replace(Scale(), device=self.device, seed=self.seed, tv=self.tv, split=self.split,
                                            tv_iter=self.tv_iter, slices_per_patient=self.slices_per_patient,
                                            eval_slices_per_patient=self.eval_slices_per_patient)
        return (f"{'PAPER' if paper else 'REDUCED'} scale: {self.image_size}^2 "
                f"({FIELD_OF_VIEW_MM / self.image_size:g} mm pixels), {self.n_views} views, quarter dose, "
                f"{self.split} split, {slices} per patient, {self.train_patients} train / "
                f"{len(VAL_PATIENTS)} val / {len(TEST_PATIENTS)} test patients, UNet-{self.base_features} depth "
                f"{self.depth}, {self.patch_size}^2 patches, batch {self.batch_size}, {self.patches_per_slice} "
                f"patches/slice/epoch, {steps}, Adam {self.learning_rate:g}, beta_r {self.beta_r:g}, "
                f"TV {'on' if self.tv else 'off'} (paper: 512^2, 2304 views, 50 slices x 8/2 patients, UNet-32 "
                f"depth 4, 96^2, batch 40, 40 patches/slice, 100 epochs, Adam 1e-4, beta_r 0.5)")


def parse_args(argv: list[str] | None = None) -> tuple[Scale, Path | None]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = Scale()
    p.add_argument("--image-size", type=int, default=d.image_size, choices=(128, 256, 512))
    p.add_argument("--views", type=int, default=d.n_views, help="views per rotation (even; paper 2304)")
    p.add_argument("--slices-per-patient", type=int, default=d.slices_per_patient, help="training; 0: all")
    p.add_argument("--eval-slices-per-patient", type=int, default=d.eval_slices_per_patient,
                   help="validation and test (default: as --slices-per-patient); 0: all")
    p.add_argument("--train-patients", type=int, default=d.train_patients)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--max-steps", type=int, default=d.max_steps, help="stop training after N steps (0: epochs)")
    p.add_argument("--base-features", type=int, default=d.base_features)
    p.add_argument("--depth", type=int, default=d.depth)
    p.add_argument("--patch-size", type=int, default=d.patch_size)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--patches-per-slice", type=int, default=d.patches_per_slice, help="per epoch")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate)
    p.add_argument("--beta-r", type=float, default=d.beta_r, help="consensus consistency weight (paper 0.5)")
    p.add_argument("--tv", action="store_true", help="also the TV baseline (Chambolle-Pock; slow on a CPU)")
    p.add_argument("--tv-iter", type=int, default=d.tv_iter)
    p.add_argument("--device", default=d.device)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--split", choices=CT_SPLITS, default=d.split,
                   help="views: odd/even views (the paper's); thinning: binomial thinning of every reading's counts")
    p.add_argument("--work", type=Path, default=None, help="keep prepared files and runs here (default: temporary)")
    p.add_argument("--result", default="fidelity", help="write benchmarks/results/<RESULT>.json and .md")
    a = p.parse_args(argv)
    if a.views % 2 or a.patch_size > a.image_size:
        p.error("--views must be even and --patch-size at most --image-size")
    scale = Scale(a.image_size, a.views, a.slices_per_patient, a.eval_slices_per_patient, a.train_patients, a.epochs,
                  a.max_steps, a.base_features, a.depth, a.patch_size, a.batch_size, a.patches_per_slice,
                  a.learning_rate, a.beta_r, a.tv, a.tv_iter, a.device, a.seed, a.split)
    return scale, a.work, a.result


def scaled_geometry(scale: Scale) -> FanBeamGeometry:
    """ldct-fanbeam with the requested grid (same 384 mm field of view) and view count."""
    geom = load_geometry("ldct-fanbeam")
    if (scale.image_size, scale.n_views) == (geom.image_size, geom.n_views):
        return geom
    return dataclasses.replace(geom, name=f"ldct-fanbeam-{scale.image_size}-{scale.n_views}v",
                               image_size=scale.image_size, pixel_size_mm=FIELD_OF_VIEW_MM / scale.image_size,
                               n_views=scale.n_views, description=f"{geom.description}; grid and views scaled")


def patient_split(scale: Scale) -> dict[str, list[Path]]:
    """Series files of the train, val and test patients (train: the first ``train_patients`` others, by name)."""
    files = sorted(SERIES.glob("*.npz"))
    patient = lambda f: f.name.split("__")[1]  # noqa: E731
    test = [f for f in files if patient(f) in TEST_PATIENTS]
    val = [f for f in files if patient(f) in VAL_PATIENTS]
    rest = [f for f in files if f not in test + val]
    return {"train": rest[:scale.train_patients], "val": val, "test": test}


def load_stack(files: list[Path], per_patient: int) -> ImageStack:
    """Evenly spaced ``per_patient`` slices (0: all) of each series, concatenated."""
    parts = []
    for f in files:
        s = read_images(f)
        idx = (np.arange(len(s.hu)) if per_patient == 0
               else np.unique(np.linspace(0, len(s.hu) - 1, per_patient).round().astype(int)))
        parts.append(ImageStack(s.hu[idx], s.pixel_spacing_mm[idx], [s.slice_ids[i] for i in idx],
                                [s.patient_ids[i] for i in idx]))
    return ImageStack(np.concatenate([p.hu for p in parts]), np.concatenate([p.pixel_spacing_mm for p in parts]),
                      sum((p.slice_ids for p in parts), []), sum((p.patient_ids for p in parts), []))


def prepare(scale: Scale, work: Path) -> tuple[dict[str, Path], dict[str, float]]:
    """Prepared train/val/test files (TV baseline on the test file when asked); seconds per split."""
    geom = scaled_geometry(scale)
    gpu = scale.device != "cpu" and torch.cuda.is_available()
    modality = ct_modality(geom, "cuda" if gpu else "cpu", scale.split)
    tv_config = TVConfig(n_iter=scale.tv_iter)
    paths, seconds = {}, {}
    eval_slices = scale.slices_per_patient if scale.eval_slices_per_patient is None else scale.eval_slices_per_patient
    for offset, (name, files) in enumerate(patient_split(scale).items()):
        stack = load_stack(files, scale.slices_per_patient if name == "train" else eval_slices)
        paths[name] = work / f"ct_{name}.h5"
        if reusable(paths[name], stack, geom, scale, offset, name == "test"):
            print(f"reusing {paths[name]} (same slices and geometry)")
            seconds[name] = 0.0
            continue
        source = simulated_source(stack, geom, DOSE_FRACTION, scale.seed + offset, SERIES,
                                  counts=scale.split == "thinning")
        summary = write_ct(paths[name], modality, source, scale.seed + offset,
                           tv_config if (name == "test" and scale.tv) else None)
        print(summary)
        seconds[name] = summary.seconds
    return paths, seconds


def reusable(path: Path, stack: ImageStack, geom: FanBeamGeometry, scale: Scale, offset: int, test: bool) -> bool:
    """Whether a prepared file in the work folder holds exactly these slices, geometry, dose, seed and split
    (and TV on the test file when asked)."""
    if not path.exists():
        return False
    data = read_prepared(path)
    same = (list(data.slice_ids) == list(stack.slice_ids) and "geometry_toml" in data.attrs
            and geometry_from_toml_text(str(data.attrs["geometry_toml"])) == geom
            and float(data.attrs.get("dose_fraction", -1)) == DOSE_FRACTION
            and int(data.attrs.get("seed", -1)) == scale.seed + offset
            and str(data.attrs.get("split_kind", "views")) == scale.split)
    return same and (not (test and scale.tv) or "tv_lam" in data.attrs)


def train_and_denoise(scale: Scale, paths: dict[str, Path], work: Path) -> tuple[dict[str, Path], dict[str, float]]:
    """Train consensus, Noise2Noise and Noise2Clean with the paper's config (scaled); denoise the test file."""
    overrides = {"epochs": scale.epochs, "max_steps": scale.max_steps, "base_features": scale.base_features,
                 "depth": scale.depth, "patch_size": scale.patch_size, "batch_size": scale.batch_size,
                 "patches_per_slice": scale.patches_per_slice, "learning_rate": scale.learning_rate,
                 "beta_r": scale.beta_r, "device": scale.device, "seed": scale.seed}
    results, seconds = {}, {}
    for method in ("consensus", "noise2noise", "noise2clean"):
        config = load_train_config(PAPER_CONFIG, {**overrides, "method": method})
        start = time.perf_counter()
        print(train(config, paths["train"], work / "runs" / method, paths["val"]))
        seconds[method] = time.perf_counter() - start
    for label, method, variant in OUTPUTS:
        results[label] = work / f"denoised_{method}_{variant}.h5"
        print(denoise(work / "runs" / method, paths["test"], results[label], variant, device=scale.device))
    return results, seconds


def table(summary: dict) -> str:
    """Markdown: ours and the paper's Table 1, RMSE (HU) and SSIM (%), mean +- std over test slices."""
    methods = [m for m in COLUMNS if m in summary]
    cell = lambda mean, std: f"{mean:.1f} ± {std:.1f}"  # noqa: E731
    lines = ["| Index | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for key, label, factor in (("rmse_hu", "RMSE (HU)", 1.0), ("ssim", "SSIM (%)", 100.0)):
        lines.append(f"| {label}, here | " + " | ".join(cell(factor * summary[m][key]["mean"],
                                                             factor * summary[m][key]["std"])
                                                        for m in methods) + " |")
        lines.append(f"| {label}, paper | " + " | ".join(cell(*PAPER_TABLE1[m][key]) if m in PAPER_TABLE1 else "–"
                                                     for m in methods) + " |")
    return "\n".join(lines) + "\n"


def criteria(summary: dict) -> dict[str, dict[str, float]]:
    """Issue 13's three numbers for each consensus output (means over test slices).

    ``rmse_vs_fbp``: RMSE / FBP's RMSE (criterion <= 0.85); ``ssim_gap_closed``: (SSIM - FBP) /
    (Noise2Clean - FBP) (criterion >= 0.6); ``ssim_minus_noise2noise``: in SSIM points against
    Noise2Noise f((x1+x2)/2) (criterion >= 0).
    """
    mean = lambda m, k: summary[m][k]["mean"]  # noqa: E731
    out = {}
    for label in ("Consensus", "Consensus mean"):
        if label in summary and {"FBP", "Noise2Noise", "Noise2Clean"} <= summary.keys():
            out[label] = {"rmse_vs_fbp": mean(label, "rmse_hu") / mean("FBP", "rmse_hu"),
                          "ssim_gap_closed": (mean(label, "ssim") - mean("FBP", "ssim"))
                          / (mean("Noise2Clean", "ssim") - mean("FBP", "ssim")),
                          "ssim_minus_noise2noise": 100 * (mean(label, "ssim") - mean("Noise2Noise", "ssim"))}
    return out


def run(scale: Scale, work: Path, result: str = "fidelity") -> dict:
    print(f"fidelity benchmark: {scale.describe()}")
    start = time.perf_counter()
    paths, prep_s = prepare(scale, work)
    results, train_s = train_and_denoise(scale, paths, work)
    ev = evaluate(paths["test"], results)
    summary = ev.summary()
    markdown = table(summary)
    record = {"scale": dataclasses.asdict(scale), "scale_description": scale.describe(),
              "patients": {k: [f.name.split("__")[1] for f in v] for k, v in patient_split(scale).items()},
              "test_slices": len(ev.slice_ids), "summary": summary, "criteria": criteria(summary),
              "paper_table1": PAPER_TABLE1,
              "seconds": {"prepare": prep_s, "train": train_s, "total": time.perf_counter() - start},
              "markdown": markdown}
    write_result(f"{result}.json", record)
    write_text_atomic(RESULTS / f"{result}.md", f"{scale.describe()}\n\n{markdown}")
    print("\n" + markdown)
    for label, c in record["criteria"].items():
        print(f"{label}: RMSE {c['rmse_vs_fbp']:.2f} x FBP, {100 * c['ssim_gap_closed']:.0f} % of the SSIM gap "
              f"closed, SSIM {c['ssim_minus_noise2noise']:+.1f} points against Noise2Noise")
    print(f"{scale.describe()}\nwrote {RESULTS / result}.json and .md in {record['seconds']['total'] / 60:.1f} min")
    return record


def main(argv: list[str] | None = None) -> dict | None:
    scale, work, result = parse_args(argv)
    if not SERIES.is_dir() or not any(SERIES.glob("*.npz")):
        print(f"fidelity benchmark skipped: {SERIES} not found (the clinical series live in ../shared)")
        return None
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
        return run(scale, work, result)
    with tempfile.TemporaryDirectory(prefix="fidelity_") as tmp:
        return run(scale, Path(tmp), result)


if __name__ == "__main__":
    main(sys.argv[1:])

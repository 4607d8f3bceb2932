"""PET end to end on the shipped CT anatomy: simulate prompts -> prepare pet -> train -> denoise -> evaluate.

    python examples/pet/run_pipeline.py OUT_DIR [--quick] [--recon fbp|osem] [--device cpu]

1. 2-D FDG-like prompts are simulated from the 12 embedded CT slices (tomoconsensus.pet.simulate:
   SUV and 511-keV attenuation from HU classes, 3 hot lesions of SUV 4 per slice, 4.4 mm detector
   blur, 3e5 prompts per slice, 30 % scatter and 15 % randoms), split by patient as in the CT demo,
   and written as prompt files (the documented schema, docs/pet.md).
2. ``tomoconsensus prepare pet`` thins each file's prompts binomially and reconstructs x1, x2, x_est.
3. Consensus, Noise2Noise and Noise2Clean are trained with the CT demo's reduced protocol, applied
   to the test patients, and evaluated (RMSE/SSIM/PSNR report) against the noiseless FBP reference;
4. the PET table: lesion SUVmean/SUVmax bias, NEMA contrast recovery, background variability and
   CoV (OUT_DIR/report/pet_quality.md and .json).

``--prepare-only`` stops after step 2 and evaluates x_est alone. ``--quick`` is a seconds-long smoke
run (tiny network, one epoch, 64^2 grid, 3 slices).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from tomoconsensus.cli import main as cli
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.demo import QUICK, DemoProtocol, patient_split
from tomoconsensus.denoise import denoise
from tomoconsensus.evaluate import evaluate
from tomoconsensus.learn.config import TrainConfig
from tomoconsensus.learn.loop import train
from tomoconsensus.pet.io import write_prompts
from tomoconsensus.pet.regions import quality_markdown, quality_table, slice_regions
from tomoconsensus.pet.simulate import PETSimulation, simulate_prompts
from tomoconsensus.report import metrics_markdown, write_report

METHODS = (("consensus", "Consensus"), ("noise2noise", "Noise2Noise"), ("noise2clean", "Noise2Clean"))
PATCHES_PER_SLICE = {False: 40, True: 4}  # 6 training slices x 40 / batch 16: 15 steps per epoch

QUICK_SIM = PETSimulation(image_size=64, pixel_size_mm=6.0, n_views=64, n_bins=64, bin_size_mm=6.0)


def prepare(out_dir: Path, protocol: DemoProtocol, sim: PETSimulation, recon: str, seed: int = 0):
    """Prompt files and prepared files per split; returns {split: prepared path} and the test slices' truth."""
    paths, test_truth = {}, None
    for name, sub, n, offset in patient_split(protocol):
        n = min(n, len(sub.hu))
        stack, sims = simulate_prompts(sub.hu[:n], sub.pixel_spacing_mm[:n], sub.slice_ids[:n], sub.patient_ids[:n],
                                       sim, seed + offset)
        prompts = write_prompts(out_dir / f"pet_{name}_prompts.h5", stack)
        paths[name] = out_dir / f"pet_{name}.h5"
        code = cli(["prepare", "pet", "--prompts", str(prompts), "--image-size", str(sim.image_size),
                    "--pixel-size-mm", str(sim.pixel_size_mm), "--recon", recon, "--seed", str(seed + offset),
                    "--out", str(paths[name])])
        if code:
            raise SystemExit(code)
        test_truth = sims if name == "test" else test_truth
    return paths, test_truth


def run(out_dir: str | Path, quick: bool = False, recon: str = "fbp", device: str = "cpu", progress: bool = True,
        methods: tuple[str, ...] = tuple(m for m, _ in METHODS)) -> dict:
    """Steps 1-4 of the module docstring; ``methods=()`` evaluates x_est alone. Returns the metrics."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    protocol, sim = (QUICK, QUICK_SIM) if quick else (DemoProtocol(), PETSimulation())
    paths, truth = prepare(out_dir, protocol, sim, recon)
    config = TrainConfig(channels=1, base_features=protocol.base_features, depth=protocol.depth,
                         patch_size=protocol.patch_size, batch_size=protocol.batch_size,
                         patches_per_slice=PATCHES_PER_SLICE[quick], epochs=protocol.epochs,
                         learning_rate=protocol.learning_rate, checkpoint_every_steps=100, device=device)
    results, runs = {}, {}
    for method, label in ((m, label) for m, label in METHODS if m in methods):
        runs[label] = out_dir / "runs" / method
        print(train(dataclasses.replace(config, method=method), paths["train"], runs[label], paths["val"],
                    progress=progress))
        results[label] = out_dir / f"denoised_{method}.h5"
        print(denoise(runs[label], paths["test"], results[label], device=device, progress=progress))
    ev = evaluate(paths["test"], results)
    files = write_report(ev, out_dir / "report", runs)
    test = read_prepared(paths["test"])
    rng = np.random.default_rng(0)
    regions = [slice_regions(s, sim.geometry(), sim.blur_fwhm_mm, rng) for s in truth]
    table = quality_table(ev.images, test.reference, regions)
    (out_dir / "report" / "pet_quality.json").write_text(json.dumps(table, indent=2))
    (out_dir / "report" / "pet_quality.md").write_text(quality_markdown(table))
    print("\n" + metrics_markdown(ev) + "\n" + quality_markdown(table))
    print(f"report: {', '.join(str(p) for p in files.values())}, pet_quality.md")
    return {"summary": ev.summary(), "pet_quality": table}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--recon", choices=("fbp", "osem"), default="fbp")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prepare-only", action="store_true", help="no training: evaluate x_est only")
    args = parser.parse_args()
    methods = () if args.prepare_only else tuple(m for m, _ in METHODS)
    run(args.out, args.quick, args.recon, args.device, methods=methods)

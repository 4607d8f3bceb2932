"""Which output to deploy, chosen without a reference: a held-out *target scan* (issue 21, docs/method.md).

The held-out consensus loss scores the training objective, and ``output_on_halves`` scores an image
operator at the noise of one half; neither compares outputs that use the data differently (the
``mean`` output g(x_est), the paper's ``z`` = (f1(x1) + f2(x2)) / 2, ``f1`` = f1(x1)), nor consensus
against Noise2Noise at the dose they are deployed at. With counts, a scan can be split by binomial
thinning into two *independent complete scans* (:func:`tomoconsensus.ct.countsplit.thin_fraction`):

* an **input** scan A with a fraction ``a`` of the dose: each output is computed from it exactly as it
  would be from the whole scan (x_est -> FBP of A, x1 and x2 -> FBP of A's thinned halves);
* a **target** scan T with the rest: its FBP t is unbiased for the image and independent of A, so
  ``S(v) = mean (out_v(A) - t)^2 = MSE_v(a) + Var(t) + (the target's log bias term)``: the same additive
  constant for every output, so differences of S estimate differences of the clean error at dose ``a``.

This script scores every output of a finished ``demo ct`` folder's runs (consensus, Noise2Noise, the
distilled network, and FBP of A) on the demo's **validation** patient (its readings, drawn as the demo
drew them; no test patient), over several draws of the A/T split, and records beside each score what
a user cannot see: the clean error at dose ``a`` and of the same output deployed on the whole scan.
The choice rule: the output with the lowest S; the paired per-slice differences and a Wilcoxon test say
whether the choice is beyond the noise of the target.

Record: benchmarks/results/output_variant_choice_aNN.json and .md, NN = 100 x fraction (written whole).
Run: .venv/bin/python benchmarks/output_variant_choice.py --demo-dir DEMO_CT_FOLDER [--fraction 0.8] [--draws 4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr, wilcoxon

from tomoconsensus import methods
from tomoconsensus.atomic import write_text_atomic
from tomoconsensus.ct.countsplit import (
    CountSinogram,
    full_line_integrals,
    thin_fraction,
)
from tomoconsensus.ct.demo import ct_split
from tomoconsensus.ct.pipeline import ct_modality, fan_beam_geometry
from tomoconsensus.ct.sources import simulated_slices
from tomoconsensus.learn.trained import load_trained
from tomoconsensus.study.runner import demo_protocol

from common import RESULTS, write_result

#: (label, run folder, variant); "FBP" is the FBP of the input scan itself.
OUTPUTS = (("FBP", None, None), ("Consensus (mean)", "consensus", "mean"), ("Consensus z", "consensus", "z"),
           ("Consensus f1", "consensus", "f1"), ("Noise2Noise (mean)", "noise2noise", "mean"),
           ("Noise2Noise f1", "noise2noise", "f1"), ("Distilled g", "distill", "full"))


def images(modality, m: CountSinogram, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """x1, x2 (thinned halves of ``m``, drawn from ``rng``) and x_est of one scan, (1, H, W) HU/1000."""
    return modality.split_and_reconstruct(m._replace(split_seed=None), rng)._asdict()


def outputs(models: dict, imgs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output of :data:`OUTPUTS` from one scan's images, (H, W) in HU."""
    t = {k: torch.from_numpy(v)[None] for k, v in imgs.items()}
    res = {}
    with torch.no_grad():
        for label, run, variant in OUTPUTS:
            if run is None:
                res[label] = 1000.0 * imgs["x_est"][0]
                continue
            method, nets = models[run]
            y = methods.output(method, nets, t["x1"], t["x2"], t["x_est"], variant, mean_from_x_est=True)
            res[label] = 1000.0 * y[0, 0].numpy()
    return res


def target_line_integrals(m: CountSinogram) -> np.ndarray:
    """The target scan's line integrals with the log's first-order bias removed (an alternative score,
    recorded beside the plain log's):
    ``E[-ln N] ~ -ln(lambda) + Var(N) / (2 lambda^2)``, so ``p = -ln(n / I0) - (n + sigma_e^2) / (2 n^2)``,
    ``n = max(N, 1)``. At a fifth of the demo's quarter dose a ray through the body keeps ~10-70
    photons, where the plain log's bias (1-5 %) correlates with the outputs' own log bias."""
    n = np.maximum(m.counts, 1.0)
    return (-np.log(n / m.i0) - (n + m.electronic_noise_std**2) / (2.0 * n**2)).astype(np.float32)


def score_slice(modality, models, m: CountSinogram, reference_hu: np.ndarray, fraction: float,
                rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """One draw on one slice: S (vs the target scan's FBP), the clean MSE at dose ``fraction`` and on the
    whole scan, per output (HU^2)."""
    a, target = thin_fraction(m, fraction, rng)
    targets = {"score": full_line_integrals(target), "score_corrected_log": target_line_integrals(target)}
    t_hu = {k: 1000.0 * modality.to_units(modality.fbp_all(v))[0] for k, v in targets.items()}
    on_a = outputs(models, images(modality, a, rng))
    on_all = outputs(models, images(modality, m, rng))
    def mse(x, y):
        return float(np.mean((x - y) ** 2))

    return {k: {**{q: mse(on_a[k], t) for q, t in t_hu.items()}, "mse_at_fraction": mse(on_a[k], reference_hu),
                "mse_whole_scan": mse(on_all[k], reference_hu)} for k in on_a}


def summarise(rows: list[dict[str, dict[str, float]]], key: str = "score") -> dict:
    """Per output: mean score ``key`` and clean errors; each output's paired score difference to the
    lowest-scoring output (mean, standard error, Wilcoxon over slices x draws) beside the clean MSE
    difference it estimates."""
    labels = list(rows[0])
    mean = {k: {q: float(np.mean([r[k][q] for r in rows])) for q in rows[0][k]} for k in labels}
    chosen = min(labels, key=lambda k: mean[k][key])
    table = {}
    for k in labels:
        d = np.array([r[k][key] - r[chosen][key] for r in rows])
        p = float(wilcoxon(d).pvalue) if k != chosen and np.any(d != 0) else None
        table[k] = {"score": mean[k][key], "rmse_at_fraction_hu": mean[k]["mse_at_fraction"] ** 0.5,
                    "rmse_whole_scan_hu": mean[k]["mse_whole_scan"] ** 0.5,
                    "score_minus_chosen": float(d.mean()),
                    "score_minus_chosen_se": float(d.std(ddof=1) / len(d) ** 0.5),
                    "clean_mse_minus_chosen_at_fraction": mean[k]["mse_at_fraction"] - mean[chosen]["mse_at_fraction"],
                    "wilcoxon_p_vs_chosen": p}
    s = [mean[k][key] for k in labels]

    def rho(q):
        return float(spearmanr(s, [mean[k][q] for k in labels])[0])

    return {"score_key": key, "chosen": chosen,
            "chosen_by_clean_at_fraction": min(labels, key=lambda k: mean[k]["mse_at_fraction"]),
            "chosen_by_clean_whole_scan": min(labels, key=lambda k: mean[k]["mse_whole_scan"]),
            "spearman_score_vs_clean_at_fraction": rho("mse_at_fraction"),
            "spearman_score_vs_clean_whole_scan": rho("mse_whole_scan"), "outputs": table}


def markdown(record: dict) -> str:
    s, dose = record["summary"], f"{100 * record['fraction']:g} %"
    lines = [f"Validation patient {', '.join(record['patients'])}, {record['slices']} slices x {record['draws']} "
             f"draws; input scan {dose} of the dose, target scan the rest. Chosen (lowest score): **{s['chosen']}**; "
             f"by the clean error at {dose}: {s['chosen_by_clean_at_fraction']}; deployed on the whole scan: "
             f"{s['chosen_by_clean_whole_scan']}. Spearman(score, clean MSE) over the {len(s['outputs'])} outputs: "
             f"{s['spearman_score_vs_clean_at_fraction']:.2f} at {dose}, "
             f"{s['spearman_score_vs_clean_whole_scan']:.2f} on the whole scan.", "",
             "| output | score − chosen (HU², ± s.e.) | Wilcoxon p | clean MSE − chosen (HU²) | bias-corrected "
             "target log: score − chosen | clean RMSE at the input dose (HU) | clean RMSE on the whole scan (HU) |",
             "|---|---|---|---|---|---|---|"]
    corrected = record["summary_corrected_log"]["outputs"]
    for k, v in s["outputs"].items():
        p = "—" if v["wilcoxon_p_vs_chosen"] is None else f"{v['wilcoxon_p_vs_chosen']:.2g}"
        lines.append(f"| {k} | {v['score_minus_chosen']:+.1f} ± {v['score_minus_chosen_se']:.1f} | {p} | "
                     f"{v['clean_mse_minus_chosen_at_fraction']:+.1f} | {corrected[k]['score_minus_chosen']:+.1f} | "
                     f"{v['rmse_at_fraction_hu']:.2f} | {v['rmse_whole_scan_hu']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, required=True, help="a finished `demo ct` folder")
    parser.add_argument("--fraction", type=float, default=0.8, help="dose share of the input scan")
    parser.add_argument("--draws", type=int, default=4, help="A/T splits per slice")
    args = parser.parse_args()
    data = demo_protocol("ct").data
    geom = fan_beam_geometry(data.geometry)
    modality = ct_modality(geom, "cpu", "thinning")
    models = {}
    for run in {r for _, r, _ in OUTPUTS if r}:
        config, nets = load_trained(args.demo_dir / "runs" / run, "cpu")
        models[run] = (config.method, nets)
    (_, val, offset), = [s for s in ct_split(data) if s[0] == "val"]
    source = simulated_slices(val, geom, data.dose_fraction, offset, counts=True)  # the demo's val readings
    rng, rows = np.random.default_rng(2026), []
    for k, sl in enumerate(source):
        ref = 1000.0 * sl.reference[0]
        rows += [score_slice(modality, models, sl.measurement, ref, args.fraction, rng) for _ in range(args.draws)]
        print(f"slice {k + 1}/{len(val.hu)} scored", flush=True)
    record = {"what": "no-reference choice of the deployed output on a held-out target scan (docstring of "
                      "benchmarks/output_variant_choice.py)", "demo_dir_protocol": json.loads(
                          (args.demo_dir / "demo_protocol.json").read_text()),
              "fraction": args.fraction, "draws": args.draws, "slices": len(val.hu),
              "patients": sorted(set(val.patient_ids)),
              "summary": summarise(rows), "summary_corrected_log": summarise(rows, "score_corrected_log"),
              "per_draw": rows}
    name = f"output_variant_choice_a{round(100 * args.fraction)}"
    write_result(f"{name}.json", record)
    md = markdown(record)
    write_text_atomic(RESULTS / f"{name}.md", md)
    print(md)


if __name__ == "__main__":
    main()

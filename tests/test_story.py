"""The demos' claims on constructed numbers: each verdict is definite (issue 21, section 4)."""

import json

import numpy as np
import pytest

from tomoconsensus.spectral.demo import iodine_checks
from tomoconsensus.study.runner import demo_spec
from tomoconsensus.study.story import ALPHA, beats, check_story, converged_check, failed, paired_p


def demo_story(metrics: dict, modality: str) -> list[str]:
    """The claims a modality's demo checks on ``metrics`` (its baseline, error metric and own claims)."""
    spec = demo_spec(modality)
    return check_story(metrics, spec.baseline, spec.error, spec.claims)


CT_METHODS = ("FBP", "TV", "Consensus", "Noise2Noise", "Noise2Noise f(x1)", "Noise2Clean", "Distilled g(x_est)")


def summary(per_slice: dict[str, dict[str, list[float]]]) -> dict:
    """method -> metric -> {mean, std, per_slice}, as metrics.json holds it."""
    return {m: {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_slice": list(v)}
                for k, v in metrics.items()} for m, metrics in per_slice.items()}


def ct_summary(rmse: dict[str, float], ssim: dict[str, float], n: int = 12, jitter: float = 0.0) -> dict:
    """Every method at its RMSE and SSIM on ``n`` slices (slice i adds i; ``jitter`` alternates in sign; a
    1e-7 i^2 k term for the k-th method keeps the paired differences free of ties, as measured ones are)."""
    offsets = np.arange(n, dtype=float)
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    return summary({m: {"rmse_hu": rmse[m] + offsets + jitter * signs * (m == "Consensus") + 1e-7 * k * offsets**2,
                        "ssim": ssim[m] - 0.001 * offsets - 1e-9 * k * offsets**2} for k, m in enumerate(rmse)})


GOOD_RMSE = {"FBP": 31.0, "TV": 30.0, "Consensus": 18.0, "Noise2Noise": 19.0, "Noise2Noise f(x1)": 25.0,
             "Noise2Clean": 17.0, "Distilled g(x_est)": 18.5}
GOOD_SSIM = {"FBP": 0.78, "TV": 0.79, "Consensus": 0.87, "Noise2Noise": 0.865, "Noise2Noise f(x1)": 0.82,
             "Noise2Clean": 0.875, "Distilled g(x_est)": 0.868}


def test_paired_wilcoxon_p_values_are_the_exact_ones():
    # all n differences favour A: the one-sided exact p is 2^-n; one of 5 against A (rank 1): 2/32
    assert paired_p([1, 2, 3, 4, 5], [2, 3, 4, 5, 6], lower_is_better=True) == pytest.approx(1 / 32)
    assert paired_p([0.9] * 12, [0.8] * 11 + [0.7], lower_is_better=False) == pytest.approx(1 / 4096)
    d = [1.0, 2.0, 3.0, 4.0, -0.5]  # B - A: the negative one has rank 1 -> W+ = 14 of 15 -> P(W+ >= 14) = 2/32
    assert paired_p([0.0] * 5, d, lower_is_better=True) == pytest.approx(2 / 32)
    assert paired_p([1.0, 2.0], [1.0, 2.0], lower_is_better=True) == 1.0


def test_ct_story_holds_with_the_paired_tests_and_targets():
    lines = demo_story(ct_summary(GOOD_RMSE, GOOD_SSIM), "ct")
    assert not failed(lines), lines
    assert lines[0] == ("holds: Consensus RMSE < FBP RMSE (23.5 vs 36.5; better on 12 of 12 test slices, paired "
                        "Wilcoxon signed-rank one-sided p = 0.00024, needs < 0.05)")
    assert "holds: Consensus RMSE <= 0.85 x FBP RMSE (0.64 x)" in lines  # (18 + 5.5) / (31 + 5.5)
    gap = next(line for line in lines if "SSIM gap" in line)
    assert gap == "holds: Consensus closes >= 60 % of the FBP -> Noise2Clean SSIM gap (95 %)"
    assert any(line.startswith("holds: Consensus SSIM > Noise2Noise SSIM (86.45 vs 85.95; better on 12 of 12")
               for line in lines)
    assert "holds: Noise2Clean SSIM >= Consensus SSIM: the supervised bound is one (+0.50 points)" in lines
    assert any(line.startswith("holds: TV SSIM > FBP SSIM (78.45 vs 77.45; better on 12 of 12") for line in lines)


def test_a_claim_that_fails_prints_does_not_hold():
    rmse = dict(GOOD_RMSE, Consensus=29.0)  # 0.95 x FBP, and worse than Noise2Noise
    ssim = dict(GOOD_SSIM, Consensus=0.80, Noise2Noise=0.85, TV=0.775)  # 21 % of the gap; TV below FBP
    lines = demo_story(ct_summary(rmse, ssim), "ct")
    assert "DOES NOT HOLD: Consensus RMSE <= 0.85 x FBP RMSE (0.95 x)" in lines
    assert "DOES NOT HOLD: Consensus closes >= 60 % of the FBP -> Noise2Clean SSIM gap (21 %)" in lines
    assert any(line.startswith("DOES NOT HOLD: Consensus SSIM > Noise2Noise SSIM (79.45 vs 84.45") for line in lines)
    assert any(line.startswith("DOES NOT HOLD: TV SSIM > FBP SSIM (76.95 vs 77.45") for line in lines)
    lines = demo_story(ct_summary(GOOD_RMSE, dict(GOOD_SSIM, Consensus=0.88)), "ct")  # above the bound
    assert "DOES NOT HOLD: Noise2Clean SSIM >= Consensus SSIM: the supervised bound is one (-0.50 points)" in lines
    assert failed(lines)


def test_distilled_network_more_than_5_percent_worse_does_not_hold():
    lines = demo_story(ct_summary(dict(GOOD_RMSE, **{"Distilled g(x_est)": 21.0}), GOOD_SSIM), "ct")
    assert "DOES NOT HOLD: Distilled g(x_est) RMSE at most 5 % worse than Consensus (+12.8 %)" in lines  # 26.5/23.5


def test_a_better_mean_the_slices_cannot_resolve_is_not_resolved():
    # consensus 0.2 HU better than Noise2Noise on average, but +-3 HU from slice to slice: half the slices each way
    s = ct_summary(dict(GOOD_RMSE, Consensus=18.8), GOOD_SSIM, jitter=3.0)
    text, verdict = beats(s, "Consensus", "Noise2Noise", "rmse_hu", "RMSE", True)
    assert verdict is None and "better on 6 of 12 test slices" in text
    p = float(text.split("p = ")[1].split(",")[0])
    assert ALPHA < p < 0.5


def test_mr_with_four_slices_cannot_resolve_any_comparison():
    methods = {"Zero-filling": 99.0, "SENSE": 71.0, "Consensus": 60.0, "Noise2Noise": 65.0, "Noise2Clean": 50.0}
    s = summary({m: {"rmse_1e-3": [v, v + 1, v + 2, v + 3], "ssim": [0.9 - v / 1000] * 4} for m, v in methods.items()})
    lines = demo_story(s, "mr")
    rmse_line = next(line for line in lines if "Consensus RMSE < Zero-filling RMSE" in line)
    assert rmse_line.startswith("NOT RESOLVED: Consensus RMSE < Zero-filling RMSE") and "p = 0.062" in rmse_line
    assert failed(lines)


def test_means_only_summaries_are_judged_on_means_and_say_so():
    s = {m: {"rmse_hu": {"mean": GOOD_RMSE[m], "std": 1.0}, "ssim": {"mean": GOOD_SSIM[m], "std": 0.1}}
         for m in GOOD_RMSE}
    lines = demo_story(s, "ct")
    assert lines[0] == "holds: Consensus RMSE < FBP RMSE (18 vs 31; means only, no per-slice values for a paired test)"


def test_noise2clean_convergence_check_reads_its_run(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"best_step": 540, "steps": 972,
                                                       "selection_criterion": "val_total"}))
    text, ok = converged_check(tmp_path, "Noise2Clean")
    assert ok and text == "Noise2Clean trained until its val_total stopped improving (selected step 540 of 972)"
    (tmp_path / "summary.json").write_text(json.dumps({"best_step": 972, "steps": 972}))
    assert converged_check(tmp_path, "Noise2Clean")[1] is False


def test_iodine_checks_need_every_concentration_within_2_percent():
    def rows(values):
        return {"iodine": [{"true": t, "measured": v} for t, v in values]}

    table = {"Reference": rows([(2.0, 2.0), (2.0, 2.0), (5.0, 5.0), (5.0, 5.0)]),
             "FBP per bin": rows([(2.0, 2.0), (2.0, 2.02), (5.0, 5.0), (5.0, 5.04)]),
             "Consensus": rows([(2.0, 2.01), (2.0, 2.03), (5.0, 5.2), (5.0, 5.2)])}
    (ref_text, ref_ok), (fbp_text, fbp_ok) = iodine_checks(table, ["Consensus"], "FBP per bin")
    assert ref_ok is False and "2 mg/mL +1.0 +- 0.5 %, 5 mg/mL +4.0 +- 0.0 %" in ref_text
    assert fbp_ok is False and "5 mg/mL +3.6" in fbp_text
    table["Consensus"] = rows([(2.0, 2.01), (2.0, 2.01), (5.0, 5.02), (5.0, 5.04)])
    assert [ok for _, ok in iodine_checks(table, ["Consensus"], "FBP per bin")] == [True, True]

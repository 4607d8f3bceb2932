"""The demos' claims, checked on their numbers, with the evidence each one rests on (issue 21, section 4).

Every claim is printed as ``holds: ...``, ``DOES NOT HOLD: ...`` or ``NOT RESOLVED: ...``:

* "A beats B" (e.g. consensus RMSE < FBP RMSE) rests on a **paired test over the test slices**: the
  Wilcoxon signed-rank test of the per-slice differences d_i = B_i - A_i (lower-is-better metrics;
  A_i - B_i for SSIM), one-sided (H1: A better), exact for the demos' slice counts
  (:func:`scipy.stats.wilcoxon`). The claim holds when A's mean is better **and** p < :data:`ALPHA`;
  with A's mean better but p >= ALPHA it is NOT RESOLVED (the slices cannot tell the two apart; with 4
  slices the smallest one-sided p is 1/16); with A's mean worse it DOES NOT HOLD. The test treats the
  test slices as the random sample: it says nothing of the spread between two training runs (CPU
  training is not bit-reproducible), which only repeated runs measure.
* Targets (RMSE ratio, share of a gap closed, a distilled network within 5 %) are thresholds on the
  means, printed with their value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: One-sided significance level of the paired tests.
ALPHA = 0.05
#: Verdicts: True, False, None (a difference the paired test does not resolve).
VERDICTS = {True: "holds", False: "DOES NOT HOLD", None: "NOT RESOLVED"}
#: Metric key -> (name printed, lower is better).
METRICS = {"ssim": ("SSIM", False)}

Check = tuple[str, "bool | None"]


def verdict_lines(checks: list[Check]) -> list[str]:
    """``verdict: text`` for each (text, verdict) check."""
    return [f"{VERDICTS[ok]}: {text}" for text, ok in checks]


def failed(lines: list[str]) -> bool:
    """Whether any claim did not hold or was not resolved (the demo then says where this is explained)."""
    return any(line.startswith(("DOES NOT HOLD", "NOT RESOLVED")) for line in lines)


def paired_p(a: list[float], b: list[float], lower_is_better: bool) -> float:
    """One-sided Wilcoxon signed-rank p-value of "A is better than B" over paired per-slice values.

    Zero differences are dropped (Wilcoxon's convention); all differences zero gives p = 1.
    """
    from scipy.stats import wilcoxon

    d = np.asarray(b, float) - np.asarray(a, float)
    d = d if lower_is_better else -d
    if not np.any(d != 0):
        return 1.0
    return float(wilcoxon(d, alternative="greater", zero_method="wilcox").pvalue)


def beats(metrics: dict, a: str, b: str, key: str, name: str, lower_is_better: bool) -> Check:
    """The claim "A beats B" in one metric with its means and paired test (module docstring)."""
    ma, mb = metrics[a][key]["mean"], metrics[b][key]["mean"]
    sign = "<" if lower_is_better else ">"
    better = ma < mb if lower_is_better else ma > mb
    scale = 100.0 if key == "ssim" else 1.0
    text = f"{a} {name} {sign} {b} {name} ({scale * ma:.4g} vs {scale * mb:.4g}"
    per_a, per_b = metrics[a][key].get("per_slice"), metrics[b][key].get("per_slice")
    if per_a is None or per_b is None:
        return text + "; means only, no per-slice values for a paired test)", better
    p = paired_p(per_a, per_b, lower_is_better)
    wins = int(np.sum(np.asarray(per_a) < per_b) if lower_is_better else np.sum(np.asarray(per_a) > per_b))
    text += (f"; better on {wins} of {len(per_a)} test slices, paired Wilcoxon signed-rank one-sided "
             f"p = {p:.2g}, needs < {ALPHA:g})")
    return text, (None if better and p >= ALPHA else better)


def check_story(metrics: dict, baseline: str, error: str,
                claims: Callable[[dict, str, str], list[Check]]) -> list[str]:
    """The paper's claims on one evaluation: method -> metric -> {mean, std[, per_slice]}.

    Consensus and Noise2Noise beat ``baseline`` in ``error`` and SSIM, the modality's own ``claims``,
    consensus beats every Noise2Noise output in SSIM, and a distilled network is at most 5 % worse
    than the consensus networks it learnt from.
    """
    names = METRICS | {error: ("RMSE", True)}
    checks = [beats(metrics, a, baseline, key, *names[key]) for key in (error, "ssim")
              for a in ("Consensus", "Noise2Noise")]
    checks += claims(metrics, baseline, error)
    for n2n in [k for k in metrics if k.startswith("Noise2Noise")]:
        checks.append(beats(metrics, "Consensus", n2n, "ssim", "SSIM", False))
    if "Distilled g(x_est)" in metrics:  # deployment: one image network at most 5 % worse than its teacher
        teacher = "Consensus (no DC)" if "Consensus (no DC)" in metrics else "Consensus"
        for key, name, sign in ((error, "RMSE", 1), ("ssim", "SSIM", -1)):
            change = metrics["Distilled g(x_est)"][key]["mean"] / metrics[teacher][key]["mean"] - 1
            checks.append((f"Distilled g(x_est) {name} at most 5 % worse than {teacher} ({100 * change:+.1f} %)",
                           sign * change <= 0.05))
    return verdict_lines(checks)


def mean(metrics: dict, method: str, key: str) -> float:
    return metrics[method][key]["mean"]


def ratio_claim(name: str, suffix: str = "") -> Callable[[dict, str, str], list[Check]]:
    """Consensus RMSE <= 0.85 x the baseline's, the baseline called ``name`` (``suffix``: what was averaged)."""
    def claims(metrics: dict, base: str, err: str) -> list[Check]:
        ratio = mean(metrics, "Consensus", err) / mean(metrics, base, err)
        return [(f"Consensus RMSE <= 0.85 x {name} RMSE{suffix} ({ratio:.2f} x)", ratio <= 0.85)]
    return claims


def converged_check(run_dir: str | Path, label: str, min_share: float = 0.25) -> Check:
    """A bound trained until its validation criterion stopped improving: the selected step is followed
    by at least ``min_share`` of the run's steps without improvement (the run's summary.json)."""
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    best, steps = int(summary["best_step"]), int(summary["steps"])
    criterion = summary.get("selection_criterion") or "validation loss"
    return (f"{label} trained until its {criterion} stopped improving (selected step {best} of {steps})",
            best <= (1 - min_share) * steps)

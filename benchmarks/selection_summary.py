"""How well a no-reference selection criterion tracks the clean error: regret, Spearman, and their tables.

Shared by the selection benchmarks (``selection_criterion.py``, ``fidelity_selection.py``,
``selection_modalities.py``). A *record* is a list of runs, each ``{"run", "method", "training_split",
"epochs": [row, ...]}`` with one row per validated epoch holding ``criterion_<name>`` for every
criterion, the clean error ``clean`` (e.g. ``rmse_hu``) and optionally ``rmse_body_hu`` and ``ssim``.

* **regret** of a run: clean error at the checkpoint the criterion selects / the run's best clean error - 1;
* **Spearman** between criterion and clean error: over one run's epochs, over the runs' selected
  checkpoints (across configurations; needs 3 runs) and over every (run, epoch);
* **configuration regret**: clean error of the run with the lowest criterion (at its selected checkpoint)
  / the lowest clean error of any run's selected checkpoint - 1 (the choice of configuration).
"""

from __future__ import annotations

from collections.abc import Sequence

from scipy.stats import spearmanr

EXTRAS = ("rmse_body_hu", "ssim")  # reported at the selected checkpoint where the rows hold them


def regret(rows: list[dict], key: str, clean: str = "rmse_hu") -> dict:
    """One run: the epoch ``key`` selects, its clean error, the best one and the Spearman over epochs."""
    chosen, best = min(rows, key=lambda r: r[key]), min(rows, key=lambda r: r[clean])
    return {"selected_epoch": chosen["epoch"], f"selected_{clean}": chosen[clean],
            **{f"selected_{x}": chosen[x] for x in EXTRAS if x in chosen},
            "best_epoch": best["epoch"], f"best_{clean}": best[clean],
            "regret_percent": 100 * (chosen[clean] / best[clean] - 1),
            "spearman_over_epochs": float(spearmanr([r[key] for r in rows], [r[clean] for r in rows])[0])}


def summarise(records: list[dict], criteria: Sequence[str], clean: str = "rmse_hu") -> dict:
    """Per criterion and method: Spearman with the clean error across runs (selected checkpoints) and over
    every (run, epoch), and each run's regret."""
    out = {}
    for name in criteria:
        key = f"criterion_{name}"
        per_run = {r["run"]: regret(r["epochs"], key, clean) for r in records}
        summary = {"runs": per_run}
        for method in sorted({r["method"] for r in records}):
            rec = [r for r in records if r["method"] == method]
            chosen = [min(r["epochs"], key=lambda e, k=key: e[k]) for r in rec]
            pooled = [e for r in rec for e in r["epochs"]]
            summary[method] = {
                "n_runs": len(rec),
                "spearman_selected": float(spearmanr([c[key] for c in chosen], [c[clean] for c in chosen])[0])
                if len(rec) > 2 else None,
                "spearman_all_epochs": float(spearmanr([e[key] for e in pooled], [e[clean] for e in pooled])[0]),
                "n_checkpoints": len(pooled),
                "max_regret_percent": max(per_run[r["run"]]["regret_percent"] for r in rec),
                "runs_within_3_percent": sum(per_run[r["run"]]["regret_percent"] <= 3 for r in rec),
                **configuration_choice(rec, key, clean)}
        out[name] = summary
    return out


def configuration_choice(records: list[dict], key: str, clean: str = "rmse_hu") -> dict:
    """The run whose selected checkpoint has the lowest criterion (the configuration a user would keep)
    against the run whose selected checkpoint has the lowest clean error; regret between the two."""
    chosen = {r["run"]: min(r["epochs"], key=lambda e: e[key]) for r in records}
    lowest = min(chosen, key=lambda run: chosen[run][key])
    best = min(chosen, key=lambda run: chosen[run][clean])
    return {"lowest_criterion_run": lowest, f"lowest_criterion_run_{clean}": chosen[lowest][clean],
            "best_clean_run": best, f"best_clean_run_{clean}": chosen[best][clean],
            "configuration_regret_percent": 100 * (chosen[lowest][clean] / chosen[best][clean] - 1)}


def markdown(record: dict, criteria: Sequence[str], clean: str = "rmse_hu", unit: str = "HU",
             digits: int = 2) -> str:
    """The record's tables: per run, each criterion's choice against the clean optimum; then per method."""
    lines = [f"| run | method | training split | clean RMSE best ({unit}) | "
             + " | ".join(f"{n}: selected RMSE ({unit}), regret, Spearman" for n in criteria) + " |",
             "|---" * (4 + len(criteria)) + "|"]
    summary = record["summary"]
    cell = (f"{{selected_{clean}:.{digits}f}} (e{{selected_epoch}}), {{regret_percent:.1f}} %, "
            "{spearman_over_epochs:+.2f}")
    for run in record["runs"]:
        best = summary[criteria[0]]["runs"][run["run"]]
        lines.append(f"| {run['run']} | {run['method']} | {run['training_split']} | {best[f'best_{clean}']:.{digits}f} "
                     f"(e{best['best_epoch']}) | "
                     + " | ".join(cell.format(**summary[n]["runs"][run["run"]]) for n in criteria) + " |")
    lines += ["", "| criterion | method | runs | Spearman, selected checkpoints | Spearman, all checkpoints | "
              "largest regret | runs within 3 % | lowest criterion (clean) | best clean | configuration regret |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name in criteria:
        for method, m in ((k, v) for k, v in summary[name].items() if k != "runs"):
            rho = "–" if m["spearman_selected"] is None else f"{m['spearman_selected']:+.2f}"
            lines.append(f"| {name} | {method} | {m['n_runs']} | {rho} | {m['spearman_all_epochs']:+.2f} "
                         f"({m['n_checkpoints']}) | {m['max_regret_percent']:.1f} % | {m['runs_within_3_percent']} | "
                         f"{m['lowest_criterion_run']} ({m[f'lowest_criterion_run_{clean}']:.{digits}f}) | "
                         f"{m['best_clean_run']} ({m[f'best_clean_run_{clean}']:.{digits}f}) | "
                         f"{m['configuration_regret_percent']:.1f} % |")
    return "\n".join(lines) + "\n"

"""The iq report: ``iq.json`` (every number), ``iq.md`` (the tables) and four figures, each written whole."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from tomoconsensus.atomic import atomic_path, write_text_atomic
from tomoconsensus.iq.measure import IQResult

#: Edges whose contrast-to-noise ratio (contrast / standard error of one ESF bin) is below this are marked *.
LOW_CNR = 10.0
IQ_FILES = ("iq.json", "iq.md", "iq_nps.png", "iq_ttf.png", "iq_dprime.png", "iq_uncertainty.png")


def iq_json(result: IQResult) -> dict:
    """Setup, per-method scalars and the radial curves (NPS and TTF), JSON-ready."""
    curves = {name: {"nps": c["nps"], "ttf_f_per_mm": c["ttf_f_per_mm"], "ttf": c["ttf"]}
              for name, c in result.curves.items()}
    return {"setup": result.setup, "methods": result.methods, "curves": curves}


def _fmt(x, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}g}"


def _dprime_table(result: IQResult, key: str, title: str) -> list[str]:
    names = list(result.methods)
    tasks = list(result.methods[names[0]][key])
    lines = ["", title + ":", "", "| Method | " + " | ".join(t.replace("_", ", ") for t in tasks) + " |",
             "|---|" + "---|" * len(tasks)]
    for name in names:
        d = result.methods[name][key]
        lines.append(f"| {name} | " + " | ".join(f"{d[t]:.2f}" for t in tasks) + " |")
    return lines


def iq_markdown(result: IQResult) -> str:
    """Three Markdown tables: noise and resolution, detectability, uncertainty calibration."""
    s = result.setup
    names = list(result.methods)
    contrasts = [f"{i['contrast_hu']:+g}" for i in s["phantom"]["inserts"]]
    lines = [f"Task phantom simulated with `{s['geometry_name']}` at dose fraction {s['dose_fraction']:g}, "
             f"{s['realisations']} realisations (seed {s['seed']}); NPS over the central {s['nps_roi_px']}^2 "
             "pixels of a uniform water disc; TTF from the ensemble-mean image of the inserts.", "",
             "| Method | noise (HU) | ∫NPS / pixel var | NPS peak (mm⁻¹) | NPS mean f (mm⁻¹) | "
             + " | ".join(f"f50 {c} HU (mm⁻¹)" for c in contrasts) + " |",
             "|---|" + "---|" * (4 + len(contrasts))]
    for name in names:
        m = result.methods[name]
        n = m["nps"]
        f50 = " | ".join(_fmt(t["f50_per_mm"]) + ("*" if t["edge_cnr"] < LOW_CNR else "") for t in m["ttf"])
        lines.append(f"| {name} | {n['noise_hu']:.1f} | {n['parseval_ratio']:.3f} | {n['peak_frequency_per_mm']:.3f} | "
                     f"{n['mean_frequency_per_mm']:.3f} | {f50} |")
    lines += ["", f"\\* edge contrast-to-noise ratio below {LOW_CNR:g} (contrast over the standard error of one "
              "ESF bin): that f50 is limited by the realisations' noise."]
    o = s["observer"]
    lines += _dprime_table(result, "dprime_npwe", f"NPWE d′ (eye filter {o['eye_filter']}, viewing distance "
                           f"{o['viewing_mm']:g} mm, {o['fov_mm']:g} mm shown on {o['display_mm']:g} mm)")
    if all("dprime_npwe_eckstein" in m for m in result.methods.values()):
        lines += _dprime_table(result, "dprime_npwe_eckstein", "The same with Eckstein's eye filter "
                               "ρ^1.5 exp(−0.98 ρ^0.68) (peak at 3.3 cycles/degree)")
    rows = [(n, m["uncertainty"]) for n, m in result.methods.items() if "uncertainty" in m]
    if rows:
        lines += ["", "Uncertainty map k·σ (σ = local RMS of (h1 − h2)/2; k from held-out noisy data): coverage of "
                  "|error| ≤ kσ and ≤ 2kσ (68.3 / 95.4 % if Gaussian), actual/predicted MSE, correlation over "
                  "8×8-pixel blocks:", "",
                  "| Method | k | test ±1σ | test ±2σ | test MSE ratio | test block r | phantom ±1σ | phantom ±2σ | "
                  "phantom MSE ratio |", "|---|---|---|---|---|---|---|---|---|"]
        for name, u in rows:
            t, p = u.get("test", {}), u["phantom"]
            pct = lambda d, k: _fmt(100 * d[k], 3) + " %" if k in d else "–"  # noqa: E731
            lines.append(f"| {name} | {u['scale_k']:.3f} | {pct(t, 'coverage_1sigma')} | {pct(t, 'coverage_2sigma')} | "
                         f"{_fmt(t.get('mse_ratio_actual_over_predicted'))} | {_fmt(t.get('block_correlation'))} | "
                         f"{pct(p, 'coverage_1sigma')} | {pct(p, 'coverage_2sigma')} | "
                         f"{_fmt(p['mse_ratio_actual_over_predicted'])} |")
    return "\n".join(lines) + "\n"


def _save(fig, path: Path, dpi: int = 100) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def figures(result: IQResult, out: Path) -> list[Path]:
    """NPS curves, TTF vs contrast (one panel per method), d' bars and the uncertainty overlays."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.curves)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in names:
        c = result.curves[name]["nps"]
        ax.plot(c["f_per_mm"], c["nps_hu2_mm2"], label=name)
    ax.set(xlabel="spatial frequency (mm⁻¹)", ylabel="NPS (HU² mm²)", title="Noise power spectrum")
    ax.legend()
    paths = [_save(fig, out / "iq_nps.png")]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        c = result.curves[name]
        for contrast, ttf in c["ttf"].items():
            ax.plot(c["ttf_f_per_mm"], ttf, label=f"{contrast} HU")
        ax.set(title=name, xlabel="f (mm⁻¹)", ylim=(0, 1.15))
    axes[0, 0].set_ylabel("TTF")
    axes[0, -1].legend(fontsize=7)
    paths.append(_save(fig, out / "iq_ttf.png"))
    tasks = list(result.methods[names[0]]["dprime_npwe"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ax.bar(np.arange(len(tasks)) + i * width, [result.methods[name]["dprime_npwe"][t] for t in tasks], width,
               label=name)
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, [t.replace("_", ", ") for t in tasks])
    ax.set(ylabel="NPWE d′")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out / "iq_dprime.png"))
    overlays = [(n, result.curves[n]["overlay"]) for n in names if result.curves[n].get("overlay")]
    if overlays:
        fig, axes = plt.subplots(len(overlays), 3, figsize=(6.6, 2.2 * len(overlays)), squeeze=False)
        for row, (name, o) in zip(axes, overlays, strict=True):
            row[0].imshow(o["image_hu"], cmap="gray", vmin=-160, vmax=240)
            top = float(np.percentile(o["error_hu"], 99))
            row[1].imshow(o["sigma_hu"], cmap="magma", vmin=0, vmax=top)
            row[2].imshow(o["error_hu"], cmap="magma", vmin=0, vmax=top)
            titles = (f"{name} output", "predicted k·σ (HU)", "|error| vs reference (HU)")
            for ax, title in zip(row, titles, strict=True):
                ax.set_title(title, fontsize=9)
                ax.axis("off")
        paths.append(_save(fig, out / "iq_uncertainty.png", dpi=80))
    return paths


def write_iq_report(result: IQResult, out_dir: str | Path) -> list[Path]:
    """Write iq.json, iq.md and the figures into ``out_dir`` (created); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_text_atomic(out / "iq.json", json.dumps(iq_json(result), indent=1) + "\n"),
             write_text_atomic(out / "iq.md", iq_markdown(result))]
    return paths + figures(result, out)

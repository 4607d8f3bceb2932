"""Write an evaluation as a physicist would put it in a paper: tables (JSON, Markdown, CSV) and figures.

Files in the report folder::

    metrics.json        method -> metric -> {mean, std, per_slice}
    metrics.md          the paper's layout (Tables 1-2): metrics as rows, methods as columns
    per_slice.csv       one row per slice and method
    comparison.png      reference and every method side by side in the display window, a zoomed
                        region, and difference maps (the paper's Figs. 1-2)
    training_curves.png loss terms and validation metrics of each training run (if runs are given)
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tomoconsensus.atomic import atomic_path, write_text_atomic  # noqa: E402
from tomoconsensus.evaluation import Evaluation, display_units  # noqa: E402
from tomoconsensus.presenters import presenter  # noqa: E402

#: Every file a report folder gets (a file not written this time is removed, so none is stale).
REPORT_FILES = ("metrics.json", "metrics.md", "per_slice.csv", "comparison.png", "training_curves.png")

def metrics_json(ev: Evaluation) -> dict:
    summary = ev.summary()
    out = {"modality": ev.modality, "slices": ev.slice_ids, "methods": {}}
    for method, metrics in summary.items():
        out["methods"][method] = {k: {**v, "per_slice": [r[k] for r in ev.per_slice[method]]}
                                  for k, v in metrics.items()}
    ref_std = ev.reference_roi_std
    out["reference_roi_std"] = {"mean": float(np.mean(ref_std)) if ref_std else None, "per_slice": ref_std}
    out["settings"] = {"ssim": "skimage structural_similarity, gaussian_weights=True, sigma=1.5, "
                               "use_sample_covariance=False, K1=0.01, K2=0.03",
                       **getattr(presenter(ev.modality), "settings", {}),
                       "roi": "flattest window of the reference, size N/16"}
    return out


def metrics_markdown(ev: Evaluation) -> str:
    return markdown_from_json(metrics_json(ev))


def markdown_from_json(record: dict) -> str:
    """The paper-layout table of a metrics.json record (metrics as rows, methods as columns, mean ± std
    as printed, one decimal); rows of the modality's ``report_rows`` that the record holds. The README's
    demo tables are rendered by this function from benchmarks/results (benchmarks/readme_tables.py)."""
    methods = record["methods"]
    names = list(methods)
    present = methods[names[0]]
    rows = [row for row in presenter(record["modality"]).report_rows if row[0] in present]
    lines = ["| Index | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, label, scale in rows:
        cells = [f"{scale * methods[m][key]['mean']:.1f} ± {scale * methods[m][key]['std']:.1f}" for m in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    ref_mean = (record.get("reference_roi_std") or {}).get("mean")
    roi_scale = next(scale for key, _, scale in presenter(record["modality"]).report_rows if key == "roi_std")
    note = (f"\n{len(record['slices'])} test slices; mean ± std over slices. Reference ROI std: "
            f"{roi_scale * ref_mean:.1f}." if ref_mean is not None else "")
    return "\n".join(lines) + "\n" + note + "\n"


def per_slice_csv(ev: Evaluation) -> str:
    buffer = io.StringIO()
    keys = list(next(iter(ev.per_slice.values()))[0])
    writer = csv.writer(buffer)
    writer.writerow(["slice_id", "method"] + keys)
    for method, rows in ev.per_slice.items():
        for slice_id, row in zip(ev.slice_ids, rows, strict=True):
            writer.writerow([slice_id, method] + [f"{row[k]:.6g}" for k in keys])
    return buffer.getvalue()


def _save_figure(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _error(row: dict, modality: str) -> float:
    """The RMSE of a per-slice metrics row, under the modality's key."""
    return row[presenter(modality).error_key]


def comparison_figure(ev: Evaluation, path: Path, slice_index: int | None = None) -> Path:
    """Reference and methods in the display window, a zoomed ROI below, difference maps last."""
    if slice_index is None:  # the slice whose first-method error is the median: a typical case
        errors = [_error(r, ev.modality) for r in ev.per_slice[ev.methods[0]]]
        slice_index = int(np.argsort(errors)[len(errors) // 2])
    p = presenter(ev.modality)
    ref_2d = display_units(ev.modality, ev.reference[slice_index])
    vmin, vmax = p.display_window(ref_2d)
    diff_range = p.difference_range((vmin, vmax))
    names = ["Reference"] + ev.methods
    images = [display_units(ev.modality, ev.reference[slice_index])] + \
             [display_units(ev.modality, ev.images[m][slice_index]) for m in ev.methods]
    n = images[0].shape[0]
    r0, c0, size = n // 4, n // 4, n // 3  # zoom window: upper-left-central region
    fig, axes = plt.subplots(3, len(names), figsize=(2.6 * len(names), 8.0), squeeze=False)
    for j, (name, img) in enumerate(zip(names, images, strict=True)):
        axes[0, j].imshow(img, cmap="gray", vmin=vmin, vmax=vmax)
        axes[0, j].add_patch(plt.Rectangle((c0, r0), size, size, fill=False, edgecolor="yellow", lw=1))
        title = name
        if j > 0:
            row = ev.per_slice[ev.methods[j - 1]][slice_index]
            err = _error(row, ev.modality)
            title += f"\nRMSE {err:.3g}, SSIM {100 * row['ssim']:.1f}"
        axes[0, j].set_title(title, fontsize=9)
        axes[1, j].imshow(img[r0:r0 + size, c0:c0 + size], cmap="gray", vmin=vmin, vmax=vmax)
        if j > 0:
            im = axes[2, j].imshow(img - images[0], cmap="RdBu_r", vmin=-diff_range, vmax=diff_range)
        else:
            axes[2, j].axis("off")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    unit = p.unit_label
    fig.colorbar(im, ax=axes[2, :].tolist(), shrink=0.8, label=f"difference to reference ({unit})")
    fig.suptitle(f"slice {ev.slice_ids[slice_index]}; display window [{vmin:g}, {vmax:g}] {unit}; "
                 f"row 2: zoom; row 3: method - reference", fontsize=10)
    return _save_figure(fig, path)


def _validation_key(record: dict) -> str | None:
    """The curve of a run's validation: its first RMSE (the modality's ``error_key``), else the loss."""
    return next((k for k in record if k.startswith("val_rmse")), "val_total" if "val_total" in record else None)


def training_curves(runs: dict[str, Path], path: Path) -> Path | None:
    """Training loss (total) and validation RMSE per run, from each run's log.jsonl."""
    logs = {}
    for name, run in runs.items():
        log = Path(run) / "log.jsonl"
        if log.exists():
            logs[name] = [json.loads(line) for line in log.read_text().splitlines()]
    if not logs:
        return None
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, lines in logs.items():
        train = [ln for ln in lines if ln["split"] == "train"]
        ax_loss.plot([ln["epoch"] for ln in train], [ln["total"] for ln in train], label=name, lw=1)
        val = [ln for ln in lines if ln["split"] == "val"]
        key = _validation_key(val[0]) if val else None
        if key:
            ax_val.plot([ln["epoch"] for ln in val], [ln[key] for ln in val], "o-", label=name, ms=3)
            ax_val.set_ylabel(key.replace("val_", "validation "))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (total)")
    ax_loss.set_yscale("symlog", linthresh=1e-4)  # the consensus loss can go negative (docs/method.md)
    ax_val.set_xlabel("epoch")
    for ax in (ax_loss, ax_val):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _save_figure(fig, path)


def write_report(ev: Evaluation, out_dir: str | Path, runs: dict[str, Path] | None = None) -> dict[str, Path]:
    """Write every report file; returns name -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"metrics.json": write_text_atomic(out_dir / "metrics.json", json.dumps(metrics_json(ev), indent=2)),
             "metrics.md": write_text_atomic(out_dir / "metrics.md", metrics_markdown(ev)),
             "per_slice.csv": write_text_atomic(out_dir / "per_slice.csv", per_slice_csv(ev)),
             "comparison.png": comparison_figure(ev, out_dir / "comparison.png")}
    curves = training_curves(runs or {}, out_dir / "training_curves.png")
    if curves:
        files["training_curves.png"] = curves
    for name in set(REPORT_FILES) - set(files):  # e.g. the curves of an earlier evaluation with --runs
        (out_dir / name).unlink(missing_ok=True)
    return files

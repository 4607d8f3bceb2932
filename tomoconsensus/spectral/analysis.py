"""What a spectral CT study reports beyond the bin images: materials, a 70 keV VMI and iodine ROIs.

Works on images in the prepared units (bins, H, W) of one slice, with the prepared file's attributes
(``bin_attenuation_matrix_per_mm``, ``materials``), so it applies equally to x_est, a network's output
and the reference:

* :func:`material_images`: ``c = M^+ mu_b`` per pixel (linear; :mod:`tomoconsensus.spectral.physics`);
* :func:`vmi_70kev_hu`: the virtual monoenergetic image at 70 keV, in HU;
* :func:`iodine_rois`: mean iodine (mg/mL) in each insert, inside half the insert's diameter (away
  from the edge blur), from the true iodine map of the count file.
"""

from __future__ import annotations

import json

import numpy as np
from scipy import ndimage

from tomoconsensus.spectral.physics import decompose, vmi_hu


def matrix_of(attrs: dict) -> tuple[np.ndarray, tuple[str, ...]]:
    """The bin attenuation matrix (bins, materials) and material names of a prepared file."""
    materials = attrs["materials"]
    materials = json.loads(materials) if isinstance(materials, str) else list(materials)
    return np.asarray(json.loads(attrs["bin_attenuation_matrix_per_mm"])), tuple(materials)


def material_images(image: np.ndarray, attrs: dict) -> np.ndarray:
    """(bins, H, W) bin HU/1000 -> (materials, H, W) amounts (water fraction, mg/mL iodine, ...)."""
    matrix, _ = matrix_of(attrs)
    bin_mu = (np.asarray(image, float) + 1.0) * matrix[:, 0, None, None]
    return decompose(bin_mu, matrix)


def vmi_70kev_hu(image: np.ndarray, attrs: dict) -> np.ndarray:
    """(bins, H, W) bin HU/1000 -> (H, W) virtual monoenergetic image at 70 keV, HU."""
    _, materials = matrix_of(attrs)
    return vmi_hu(material_images(image, attrs), materials, 70.0)


def insert_masks(iodine_truth: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Central ROIs (half the diameter) of the iodine inserts of a true map (H, W): (mask, mg/mL)."""
    labels, n = ndimage.label(iodine_truth > 0)
    rois = []
    for k in range(1, n + 1):
        region = labels == k
        radius = np.sqrt(region.sum() / np.pi)
        core = ndimage.binary_erosion(region, iterations=max(1, int(round(radius / 2))))
        rois.append((core if core.any() else region, float(np.median(iodine_truth[region]))))
    return rois


def iodine_rois(image: np.ndarray, attrs: dict, iodine_truth: np.ndarray) -> list[dict]:
    """Measured mean iodine of every insert of one slice: ``[{"true", "measured"}, ...]`` in mg/mL."""
    names = matrix_of(attrs)[1]
    iodine = material_images(image, attrs)[names.index("iodine")]
    return [{"true": true, "measured": float(iodine[mask].mean())} for mask, true in insert_masks(iodine_truth)]


def quality_table(reference: np.ndarray, images: dict[str, np.ndarray], attrs: dict,
                  iodine_truth: np.ndarray) -> dict[str, dict]:
    """Per method: 70 keV VMI RMSE and SSIM (CT window) against the reference's VMI, and iodine per insert.

    ``reference`` and every image stack are (slices, bins, H, W) in bin HU/1000; ``iodine_truth``
    (slices, H, W) in mg/mL. The reference itself is the first row (its iodine: what the noiseless
    data give, beam hardening included).
    """
    from tomoconsensus.metrics import rmse, ssim
    from tomoconsensus.tomo.presentation import HU_WINDOW

    ref_vmi = [vmi_70kev_hu(im, attrs) for im in reference]
    table = {}
    for name, stack in {"Reference": reference, **images}.items():
        vmi = [vmi_70kev_hu(im, attrs) for im in stack]
        pairs = list(zip(vmi, ref_vmi, strict=True))
        rois = [r for im, t in zip(stack, iodine_truth, strict=True) for r in iodine_rois(im, attrs, t)]
        table[name] = {"vmi70_rmse_hu": float(np.mean([rmse(a, b) for a, b in pairs])),
                       "vmi70_ssim": float(np.mean([ssim(np.clip(a, *HU_WINDOW), np.clip(b, *HU_WINDOW),
                                                         HU_WINDOW[1] - HU_WINDOW[0]) for a, b in pairs])),
                       "iodine": rois}
    return table


def iodine_statistics(table: dict[str, dict], method: str, against: str) -> dict[float, dict[str, float]]:
    """Per true concentration: the change of the pooled ROI mean of ``method`` relative to ``against``.

    ROIs are paired (the same insert of the same scan in both rows), so the standard error is that of
    the mean paired difference: ``se = sd(m_i - a_i) / sqrt(n) / mean(a)``. Returns
    ``{true: {"n", "mean", "against", "change", "se"}}`` with ``change`` and ``se`` as fractions.
    """
    stats = {}
    for true in sorted({r["true"] for r in table[against]["iodine"]}):
        pairs = np.array([(m["measured"], a["measured"]) for m, a in zip(table[method]["iodine"],
                                                                         table[against]["iodine"], strict=True)
                          if a["true"] == true])
        diff, base = pairs[:, 0] - pairs[:, 1], pairs[:, 1].mean()
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
        stats[true] = {"n": len(diff), "mean": float(pairs[:, 0].mean()), "against": float(base),
                       "change": float(diff.mean() / base), "se": float(se / abs(base))}
    return stats


def iodine_change(table: dict[str, dict], method: str, against: str) -> float:
    """Largest relative change of an insert's mean iodine between two rows, pooled per concentration."""
    return float(max(abs(s["change"]) for s in iodine_statistics(table, method, against).values()))


def quality_markdown(table: dict[str, dict], baseline: str | None = None) -> str:
    """The table as Markdown: VMI columns and the mean measured iodine per true concentration; then each
    row's iodine change against the noiseless Reference and against ``baseline`` (the same scans'
    linear reconstruction), in % +- the standard error of the paired ROI differences."""
    concentrations = sorted({r["true"] for r in table["Reference"]["iodine"]})
    n = sum(r["true"] == concentrations[0] for r in table["Reference"]["iodine"])
    head = "| | VMI 70 keV RMSE (HU) | VMI SSIM (%) | " + " | ".join(f"iodine {c:g} mg/mL" for c in concentrations)
    lines = [head + " |", "|---" * (3 + len(concentrations)) + "|"]
    for name, row in table.items():
        means = [np.mean([r["measured"] for r in row["iodine"] if r["true"] == c]) for c in concentrations]
        lines.append(f"| {name} | {row['vmi70_rmse_hu']:.1f} | {100 * row['vmi70_ssim']:.1f} | "
                     + " | ".join(f"{m:.2f}" for m in means) + " |")
    against = ["Reference"] + ([baseline] if baseline else [])
    lines += ["", f"Iodine change, % +- standard error ({n} ROIs per concentration, paired):", "",
              "| | " + " | ".join(f"{c:g} mg/mL vs {a}" for a in against for c in concentrations) + " |",
              "|---" * (1 + len(against) * len(concentrations)) + "|"]
    for name in table:
        cells = []
        for a in against:
            stats = iodine_statistics(table, name, a)
            cells += [f"{100 * stats[c]['change']:+.1f} +- {100 * stats[c]['se']:.1f}" for c in concentrations]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

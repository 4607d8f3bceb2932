"""Spectral (photon-counting) CT image quality per energy bin: the CT machinery of :mod:`tomoconsensus.iq`
applied to each bin's channel.

Each bin of a spectral reconstruction is a CT image in bin "HU" (:mod:`tomoconsensus.spectral.modality`),
so the NPS (TG-233, :func:`tomoconsensus.iq.nps.measure_nps`) and the TTF from circular inserts
(:func:`tomoconsensus.iq.ttf.measure_ttf`) are measured bin by bin:

* :func:`per_bin_nps`: K realisations (K, B, N, N) of a uniform region, noise-only images per bin
  ``(x_k - mean) sqrt(K/(K-1))``, the NPS over the central ``roi_px`` square (Parseval: its integral
  equals the per-pixel variance over the realisations); higher bins, with fewer counts, are noisier;
* :func:`per_bin_ttf`: the TTF of every insert in each bin's ensemble-mean image (B, N, N); an insert's
  contrast differs between bins (its attenuation's energy dependence), and a non-linear denoiser's TTF
  may then differ between bins too.

Plugin target: ``tomoconsensus.spectral.iq:per_bin_nps`` (and :func:`per_bin_ttf`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tomoconsensus.iq.measure import Insert
from tomoconsensus.iq.nps import NPSResult, central_roi, ensemble_noise, measure_nps
from tomoconsensus.iq.ttf import TTFResult, measure_ttf


def per_bin_nps(images: np.ndarray, pixel_mm: float, roi_px: int) -> list[NPSResult]:
    """NPS of each bin of K >= 2 realisations ``images`` (K, B, H, W) over the central ``roi_px`` square."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] < 2:
        raise ValueError(f"per_bin_nps: realisations (K >= 2, bins, H, W), not shape {images.shape}")
    out = []
    for b in range(images.shape[1]):
        roi = central_roi(images[:, b], roi_px)
        out.append(measure_nps(ensemble_noise(roi), pixel_mm, float(roi.var(axis=0, ddof=1).mean())))
    return out


def per_bin_ttf(mean_images: np.ndarray, inserts: Sequence[Sequence[Insert]], pixel_mm: float) -> list[list[TTFResult]]:
    """TTF per bin and insert: ``mean_images`` (B, H, W) ensemble means; ``inserts[b]`` the inserts with bin b's
    nominal contrast (same centres and radii in every bin)."""
    mean_images = np.asarray(mean_images)
    if len(inserts) != mean_images.shape[0]:
        raise ValueError(f"per_bin_ttf: {len(inserts)} insert lists for {mean_images.shape[0]} bins")
    return [[measure_ttf(mean_images[b], i.centre_rc, i.radius_px, pixel_mm, i.contrast) for i in bin_inserts]
            for b, bin_inserts in enumerate(inserts)]


def per_bin_markdown(bins: Sequence[str], nps: Sequence[NPSResult], ttfs: Sequence[Sequence[TTFResult]]) -> str:
    """Markdown table: one row per bin, noise, NPS peak and mean frequency, f50 per insert."""
    n_ins = len(ttfs[0]) if ttfs else 0
    lines = ["| Bin | noise | NPS peak (mm⁻¹) | NPS mean f (mm⁻¹) | " + " | ".join(
        f"f50 insert {i + 1} (mm⁻¹)" for i in range(n_ins)) + " |", "|---|---|---|---|" + "---|" * n_ins]
    for name, n, t in zip(bins, nps, ttfs, strict=True):
        lines.append(f"| {name} | {n.noise_hu:.3g} | {n.peak_frequency:.3f} | {n.mean_frequency:.3f} | "
                     + " | ".join(f"{r.f50:.3f}" for r in t) + " |")
    return "\n".join(lines) + "\n"

"""Benchmark: how correlated the two MR halves' noise is, with the demo's 4x design (issue 21, section 5).

Both halves keep the ``center_lines`` central lines (:func:`tomoconsensus.mr.masks.split_outer_lines`), so
their noise is identical on those lines. After pre-whitening, oversampling removal and coil compression the
k-space noise is white (docs/mr-simulation.md, tested), so the halves' noise images are
``n_h = sum_c conj(S_c) iFFT(w_h * mask_h * e_c)`` with ``e`` white complex Gaussian. At every pixel their
correlation is then, whatever the maps S,

    rho = sum_{l in both} w1(l) w2(l) / sqrt(sum_{l in 1} w1(l)^2 * sum_{l in 2} w2(l)^2),

which the script also measures (Monte Carlo with a known seed, real and imaginary channels pooled, pixels
inside the object: |reference| > 5 % of its maximum). Data: the MR demo's test slices (its anatomy,
scanner simulation, 15 -> 8 virtual coils, ESPIRiT maps, 128 lines, 4x, 16 centre lines), several mask
draws. Two designs:

* ``shared_centre`` (what ``prepare mr`` does): both halves hold all centre lines (weight 1);
* ``split_centre`` (``mr_modality(centre_split=True)``, :func:`tomoconsensus.mr.masks.split_centre_lines`):
  the centre lines are split at random too, half 1 holding c1 = c // 2 of them, each half weighted by
  its own 1 / P(line in half) (c / c1 in the centre); the halves are then disjoint, so their noise is independent.

Also recorded per design (in the pre-whitened units of the data, noise variance 1/2 per k-space sample;
``reference_rms`` gives the image scale): the halves' noise std, and the deviation of each half's image of the data from
the fully sampled image (aliasing and noise together; what the consensus loss sees) with the
correlation of the two halves' deviations.

Writes benchmarks/results/mr_halves_correlation.json (the whole file). Run (one thread, < 2 min):
``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mr_halves_correlation.py``
"""

from __future__ import annotations

import json
import time

import numpy as np

from tomoconsensus.mr.demo import mr_demo_volumes, mr_noise_std, mr_split
from tomoconsensus.mr.masks import SplitMask, center_lines_mask, split_centre_lines
from tomoconsensus.mr.recon import zero_filled_combination
from tomoconsensus.mr.sources import undersampled_slices
from tomoconsensus.study.runner import demo_protocol

from common import write_result

MASK_SEEDS = (0, 1, 2)  # mask draws (each: one 4x mask and split per slice)
NOISE_REALISATIONS = 16  # white-noise draws per slice and mask
OBJECT_FRACTION = 0.05  # pixels with |reference| above this fraction of the slice's maximum


def analytic_correlation(design: SplitMask) -> float:
    """rho of the module docstring: the pixel-wise correlation of the halves' noise for white k-space noise."""
    w1 = np.where(design.half1, design.weight_half1, 0.0)
    w2 = np.where(design.half2, design.weight_half2, 0.0)
    return float(np.sum(w1 * w2) / np.sqrt(np.sum(w1 ** 2) * np.sum(w2 ** 2)))


def _half(kspace: np.ndarray, maps: np.ndarray, lines: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return zero_filled_combination(kspace * lines[None, :, None], maps, np.where(lines, weight, 0.0))


def _pairs(design: SplitMask, kspace: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (_half(kspace, maps, design.half1, design.weight_half1),
            _half(kspace, maps, design.half2, design.weight_half2))


def _correlation(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Pooled correlation of complex values (real and imaginary parts as samples; both zero-mean)."""
    x, y = np.concatenate(a), np.concatenate(b)
    return float(np.real(np.vdot(x, y)) / np.sqrt(np.vdot(x, x).real * np.vdot(y, y).real))


def measure(slices, center_lines: int, rng: np.random.Generator) -> dict[str, dict[str, list]]:
    """Per design: the halves' noise (n1, n2), deviations (d1, d2), analytic rho and shared line counts."""
    out = {name: {k: [] for k in ("n1", "n2", "d1", "d2", "ref", "rho", "shared", "lines", "union")}
           for name in ("shared_centre", "split_centre")}
    for sl in slices:
        m = sl.measurement
        reference = (sl.reference[0] + 1j * sl.reference[1]) / m.scale  # fully sampled, same maps and units
        inside = np.abs(reference) > OBJECT_FRACTION * np.abs(reference).max()
        centre = center_lines_mask(m.kspace.shape[-2], center_lines)
        for name, design in (("shared_centre", m.design), ("split_centre", split_centre_lines(m.design, centre, rng))):
            got = out[name]
            d1, d2 = _pairs(design, m.kspace, m.maps)
            got["d1"].append((d1 - reference)[inside])
            got["d2"].append((d2 - reference)[inside])
            got["ref"].append(reference[inside])
            got["rho"].append(analytic_correlation(design))
            got["shared"].append(int(np.sum(design.half1 & design.half2)))
            got["lines"].append((int(design.half1.sum()) + int(design.half2.sum())) / 2)
            got["union"].append(int(np.sum(design.half1 | design.half2)))
            for _ in range(NOISE_REALISATIONS):
                # white noise of variance 1/2 per complex sample (pre-whitened, oversampling removed)
                e = (rng.standard_normal(m.kspace.shape) + 1j * rng.standard_normal(m.kspace.shape)) / 2
                n1, n2 = _pairs(design, e * design.mask[None, :, None], m.maps)
                got["n1"].append(n1[inside])
                got["n2"].append(n2[inside])
    return out


def summarise(got: dict[str, list]) -> dict:
    noise = np.sqrt(np.mean(np.abs(np.concatenate(got["n1"] + got["n2"])) ** 2))
    deviation = np.sqrt(np.mean(np.abs(np.concatenate(got["d1"] + got["d2"])) ** 2))
    return {"noise_correlation_measured": _correlation(got["n1"], got["n2"]),
            "noise_correlation_analytic": float(np.mean(got["rho"])),
            "shared_lines": float(np.mean(got["shared"])),
            "lines_per_half": float(np.mean(got["lines"])),
            "share_of_a_halfs_lines_shared": float(np.mean(np.divide(got["shared"], got["lines"]))),
            "share_of_the_4x_lines_shared": float(np.mean(np.divide(got["shared"], got["union"]))),
            "reference_rms": float(np.sqrt(np.mean(np.abs(np.concatenate(got["ref"])) ** 2))),
            "half_noise_std": float(noise),
            "half_deviation_rms": float(deviation),
            "deviation_correlation": _correlation(got["d1"], got["d2"])}


def main() -> dict:
    start = time.perf_counter()
    mr = demo_protocol("mr").data
    noise_std = mr_noise_std(mr)
    name, stack, n, offset = mr_split(mr)[2]  # the demo's test patients
    volumes = mr_demo_volumes(name, stack, n, offset, mr, 0, noise_std)
    rng = np.random.default_rng(2026)
    got: dict[str, dict[str, list]] = {}
    for seed in MASK_SEEDS:
        slices = list(undersampled_slices(volumes, mr.acceleration, mr.center_lines, seed,
                                          virtual_coils=mr.virtual_coils or None))[:n]
        for design, values in measure(slices, mr.center_lines, rng).items():
            for key, value in values.items():
                got.setdefault(design, {}).setdefault(key, []).extend(value)
    result = {
        "what": "correlation of the two MR halves' image-domain noise and deviations (issue 21 section 5); "
                "benchmarks/mr_halves_correlation.py docstring",
        "design": {"matrix": mr.matrix, "acceleration": mr.acceleration, "center_lines": mr.center_lines,
                   "coils": mr.coils, "virtual_coils": mr.virtual_coils, "simulation": mr.simulation,
                   "noise_std": noise_std, "slices": n, "mask_seeds": list(MASK_SEEDS),
                   "noise_realisations_per_slice_and_mask": NOISE_REALISATIONS,
                   "object_pixels": f"|reference| > {OBJECT_FRACTION:g} max"},
        "shared_centre": summarise(got["shared_centre"]),
        "split_centre": summarise(got["split_centre"]),
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_result("mr_halves_correlation.json", result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

"""Photon-counting CT data simulated from CT anatomy, with iodine inserts of known concentration.

Per slice:

1. the HU image is resampled onto a grid twice as fine as the reconstruction grid (the simulation
   does not use the reconstruction's own discretisation);
2. materials from HU at 70 keV: up to 100 HU water of density ``1 + HU/1000`` (lung, fat, soft
   tissue as water-equivalent), above 100 HU a mixture of 1.1 g/mL water and ICRU cortical bone with
   the bone volume fraction ``(HU - 100) / (HU_bone(70 keV) - 100)`` (clipped to 1; ``HU_bone``
   about 1560);
3. iodine discs (``insert_mg_per_ml``, ``insert_diameter_mm``) added in soft tissue, each with a 3 mm
   soft-tissue margin;
4. line integrals of each material map (fan-beam, ASTRA), mean counts per bin
   (:func:`tomoconsensus.spectral.physics.expected_counts`) for ``i0`` photons per detector element and
   view, and Poisson counts.

The reference is the per-bin FBP of the noiseless mean counts (same resolution and beam hardening as
x1, x2, x_est, no noise), and the true material maps on the reconstruction grid are returned for the
iodine ROI checks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from skimage.transform import rescale

from tomoconsensus.spectral.io import CountStack
from tomoconsensus.spectral.materials import MATERIALS, attenuation_per_mm
from tomoconsensus.spectral.modality import SpectralMeasurement, SpectralModality
from tomoconsensus.spectral.physics import expected_counts, flat_field
from tomoconsensus.tomo.curved import forward_projector
from tomoconsensus.tomo.geometry import FanBeamGeometry


@dataclass(frozen=True)
class SpectralSimulation:
    """Count level, bins and inserts (defaults: an ideal 4-bin photon-counting CT at low dose).

    ``i0`` is in photons per detector element and view over all energies (the demo geometry's
    elements are 4 channels wide). The bin edges put the iodine K edge (33.2 keV) on a boundary.
    """

    i0: float = 2.0e5
    edges_kev: tuple[float, ...] = (20.0, 33.2, 50.0, 70.0, 120.0)
    insert_mg_per_ml: tuple[float, ...] = (2.0, 5.0, 10.0)
    insert_diameter_mm: float = 18.0
    #: further inserts per slice of a concentration drawn uniformly from ``random_range_mg_per_ml`` (as the
    #: enhanced vessels and organs of contrast scans; placed after the fixed ones, where there is room)
    random_inserts: int = 0
    random_range_mg_per_ml: tuple[float, float] = (0.5, 15.0)


#: Up to this HU, tissue is water of density 1 + HU / 1000; above, water (1.1 g/mL) mixed with bone.
SOFT_TISSUE_MAX_HU = 100.0


class Insert(NamedTuple):
    x_mm: float
    y_mm: float
    diameter_mm: float
    mg_per_ml: float


class SimulatedSlice(NamedTuple):
    measurement: SpectralMeasurement
    reference: np.ndarray  # (bins, H, W) bin HU/1000, noiseless FBP
    materials: np.ndarray  # (n_materials, H, W) true amounts on the reconstruction grid
    inserts: list
    scans: tuple = ()  # all repeated scans (independent Poisson counts of the same mean), the first is measurement


def material_maps(hu: np.ndarray) -> np.ndarray:
    """HU image -> (water fraction, bone fraction, iodine mg/mL) maps (module docstring, step 2)."""
    mu_w, mu_b = attenuation_per_mm("water", [70.0])[0], attenuation_per_mm("bone", [70.0])[0]
    hu_bone = 1000.0 * (mu_b / mu_w - 1.0)
    bone = np.clip((hu - SOFT_TISSUE_MAX_HU) / (hu_bone - SOFT_TISSUE_MAX_HU), 0.0, 1.0)
    water = np.where(hu > SOFT_TISSUE_MAX_HU, (1.0 - bone) * (1.0 + SOFT_TISSUE_MAX_HU / 1000.0),
                     np.clip(1.0 + hu / 1000.0, 0.0, None))
    return np.stack([water, bone, np.zeros_like(hu)]).astype(np.float64)


def disc(geom: FanBeamGeometry, x_mm: float, y_mm: float, diameter_mm: float) -> np.ndarray:
    x, y = geom.pixel_centers_mm()
    return (x - x_mm) ** 2 + (y - y_mm) ** 2 < (diameter_mm / 2) ** 2


def place_inserts(hu: np.ndarray, geom: FanBeamGeometry, sim: SpectralSimulation, rng: np.random.Generator,
                  tries: int = 500) -> list[Insert]:
    """Non-overlapping discs lying, with a 3 mm margin, in soft tissue (-100 to 100 HU): the fixed
    concentrations first, then ``sim.random_inserts`` of random concentration."""
    soft = (hu > -100) & (hu < 100)
    x, y = geom.pixel_centers_mm()
    candidates = np.argwhere(soft)
    concentrations = list(sim.insert_mg_per_ml)
    if sim.random_inserts:
        concentrations += rng.uniform(*sim.random_range_mg_per_ml, sim.random_inserts).round(2).tolist()
    inserts: list[Insert] = []
    for _ in range(tries):
        if len(inserts) == len(concentrations) or not len(candidates):
            break
        r, c = candidates[rng.integers(len(candidates))]
        d = sim.insert_diameter_mm
        clear = all(np.hypot(x[r, c] - o.x_mm, y[r, c] - o.y_mm) > d + 6 for o in inserts)
        if clear and np.all(soft[disc(geom, x[r, c], y[r, c], d + 6.0)]):
            inserts.append(Insert(float(x[r, c]), float(y[r, c]), d, concentrations[len(inserts)]))
    return inserts


def with_inserts(maps: np.ndarray, geom: FanBeamGeometry, inserts: list[Insert]) -> np.ndarray:
    maps = maps.copy()
    for ins in inserts:
        maps[2][disc(geom, ins.x_mm, ins.y_mm, ins.diameter_mm)] = ins.mg_per_ml
    return maps


def simulate_slice(hu: np.ndarray, modality: SpectralModality, sim: SpectralSimulation,
                   rng: np.random.Generator, repeats: int = 1) -> SimulatedSlice:
    """One slice of Poisson bin counts from a HU image on ``modality.geom``'s grid (module docstring).

    ``repeats`` scans of the same object (independent Poisson counts of the same mean counts, as
    repeated scans of a phantom) are in ``scans``; the first is ``measurement``.
    """
    geom = modality.geom
    fine = dataclasses.replace(geom, image_size=2 * geom.image_size, pixel_size_mm=geom.pixel_size_mm / 2)
    hu_fine = rescale(np.asarray(hu, float), 2, order=1, mode="edge")
    inserts = place_inserts(hu, geom, sim, rng)
    maps_fine = with_inserts(material_maps(hu_fine), fine, inserts)
    import torch  # the views split over torch's CPU threads, as the CT simulation

    projector = forward_projector(fine, kind="strip", threads=torch.get_num_threads())
    try:
        integrals = np.stack([projector.forward(m) for m in maps_fine])  # (materials, views, channels)
    finally:
        projector.close()
    edges = np.asarray(sim.edges_kev)
    mean = expected_counts(integrals, MATERIALS, modality.spectrum, edges, sim.i0)
    flat = flat_field(modality.spectrum, edges, sim.i0)
    noiseless = SpectralMeasurement(mean, flat)
    scans = tuple(SpectralMeasurement(rng.poisson(mean).astype(np.int64), flat) for _ in range(repeats))
    truth = with_inserts(material_maps(np.asarray(hu, float)), geom, inserts)
    return SimulatedSlice(scans[0], modality.estimate(noiseless), truth, inserts, scans)


def simulate_stack(hu_slices, slice_ids, patient_ids, modality: SpectralModality, sim: SpectralSimulation,
                   seed: int = 0, progress: bool = False, repeats: int = 1) -> CountStack:
    """Count file contents for HU slices (n, H, W) on ``modality.geom``'s grid, one seed per slice.

    With ``repeats`` > 1 every slice is scanned that many times (independent noise, the same object
    and inserts; ids ``<slice id>_scan<k>``), slice after slice: repeated scans for ROI statistics.
    """
    from tomoconsensus.progress import progress as progress_bar

    seeds = np.random.SeedSequence(seed).spawn(len(hu_slices))
    pairs = list(zip(hu_slices, seeds, strict=True))
    sims = [simulate_slice(hu, modality, sim, np.random.default_rng(s), repeats)
            for hu, s in progress_bar(pairs, desc="simulate", unit="slice", enabled=progress)]
    ids = list(slice_ids) if repeats == 1 else [f"{i}_scan{k}" for i in slice_ids for k in range(repeats)]
    return CountStack(np.stack([scan.counts for s in sims for scan in s.scans]), sims[0].measurement.flat,
                      np.asarray(sim.edges_kev), ids, [p for p in patient_ids for _ in range(repeats)],
                      np.repeat(np.stack([s.reference for s in sims]), repeats, axis=0),
                      np.repeat(np.stack([s.materials[2] for s in sims]), repeats, axis=0))

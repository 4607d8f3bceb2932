"""2-D PET prompts simulated from CT anatomy: activity (SUV) and 511-keV attenuation from HU classes.

Per slice (docs/pet.md has the table and the sources):

1. the CT image is resampled onto a grid twice as fine as the reconstruction grid (so the
   simulation does not use the reconstruction's own discretisation) and masked to the scanner's
   transaxial field of view;
2. each pixel is given a tissue class from its HU (:data:`TISSUE_CLASSES`): an FDG-like SUV and
   its linear attenuation at 511 keV (water 0.096 /cm, cortical bone 0.17 /cm);
3. hot disc lesions (SUV ``lesion_suv``, NEMA sphere diameters) are placed in soft tissue;
4. line integrals of activity and attenuation on the parallel geometry (ASTRA strip projector);
   a Gaussian detector blur along the bins (equal to an isotropic Gaussian image blur of the same
   FWHM, for a shift-invariant Gaussian);
5. ``m = k * n * exp(-integral mu)`` with detector efficiencies ``n`` (shared by every slice) and a
   calibration ``k`` [prompts per (SUV mm)] chosen so the slice has ``counts_per_slice`` expected
   prompts; additive ``a`` = scatter (a wide Gaussian blur of the trues) + randoms (uniform);
6. ``prompts ~ Poisson(m * (A x) + a)``.

Images are therefore in SUV (g/mL); the reference is the corrected FBP of the noiseless data on the
reconstruction grid (same resolution as x1, x2, x_est; no noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.ndimage import gaussian_filter1d
from skimage.transform import rescale

from tomoconsensus.pet.io import ListMode, PromptStack
from tomoconsensus.pet.recon import CorrectedFBP, fwhm_to_sigma, pet_geometry
from tomoconsensus.tomo.geometry import ParallelBeamGeometry
from tomoconsensus.tomo.projector import AstraProjector


class TissueClass(NamedTuple):
    """HU interval [hu_min, hu_max), 511-keV attenuation (1/cm) and FDG-like uptake (SUV)."""

    name: str
    hu_min: float
    hu_max: float
    mu_511_per_cm: float
    suv: float


#: mu(511 keV) = density x mass attenuation of water at 511 keV (0.096 cm^2/g, NIST XCOM), except
#: cortical bone 0.17 /cm (Kinahan et al., Med. Phys. 25:2046, 1998); densities lung 0.3, fat 0.92 g/mL.
#: SUVs are typical FDG values (background soft tissue 1; lung, fat and marrow lower).
TISSUE_CLASSES = (
    TissueClass("air", -np.inf, -900.0, 0.0, 0.0),
    TissueClass("lung", -900.0, -200.0, 0.029, 0.4),
    TissueClass("fat", -200.0, -30.0, 0.088, 0.4),
    TissueClass("soft tissue", -30.0, 200.0, 0.096, 1.0),
    TissueClass("bone", 200.0, np.inf, 0.17, 0.6),
)
SOFT_TISSUE = 3


@dataclass(frozen=True)
class PETSimulation:
    """Scanner and count level of the simulation (sources in docs/pet.md).

    Attributes
    ----------
    image_size, pixel_size_mm : reconstruction grid (128 x 3 mm = 384 mm field of view)
    n_views, n_bins, bin_size_mm : parallel sinogram over 180 degrees
    counts_per_slice : expected prompts per 2-D slice (3e5: order of a clinical FDG bed, rebinned)
    scatter_fraction, randoms_fraction : shares of the prompts
    blur_fwhm_mm : detector resolution (4.4 mm: NEMA NU 2 transverse FWHM of a current PET/CT)
    normalisation_spread : std of the detector efficiencies around 1
    lesions_per_slice, lesion_suv, lesion_diameters_mm : hot discs (NEMA IQ sphere diameters)
    """

    image_size: int = 128
    pixel_size_mm: float = 3.0
    n_views: int = 128
    n_bins: int = 128
    bin_size_mm: float = 3.0
    counts_per_slice: float = 3e5
    scatter_fraction: float = 0.30
    randoms_fraction: float = 0.15
    blur_fwhm_mm: float = 4.4
    normalisation_spread: float = 0.05
    lesions_per_slice: int = 3
    lesion_suv: float = 4.0
    lesion_diameters_mm: tuple[float, ...] = field(default=(10.0, 13.0, 17.0, 22.0))

    @property
    def angles_deg(self) -> np.ndarray:
        return np.arange(self.n_views) * 180.0 / self.n_views

    def geometry(self, oversample: int = 1) -> ParallelBeamGeometry:
        """The reconstruction geometry, or the simulation's finer grid (``oversample`` 2)."""
        return pet_geometry(self.angles_deg, self.n_bins, self.bin_size_mm, self.image_size * oversample,
                            self.pixel_size_mm / oversample)


class Lesion(NamedTuple):
    """A hot disc: centre (x, y) in mm (geometry convention), diameter mm, SUV."""

    x_mm: float
    y_mm: float
    diameter_mm: float
    suv: float


def tissue_maps(hu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HU image -> (class index, mu at 511 keV in 1/mm, SUV), each the shape of ``hu``."""
    classes = np.zeros(hu.shape, dtype=np.int8)
    for i, t in enumerate(TISSUE_CLASSES):
        classes[(hu >= t.hu_min) & (hu < t.hu_max)] = i
    mu = np.array([t.mu_511_per_cm / 10.0 for t in TISSUE_CLASSES])[classes]
    suv = np.array([t.suv for t in TISSUE_CLASSES])[classes]
    return classes, mu.astype(np.float32), suv.astype(np.float32)


def disc_mask(geom: ParallelBeamGeometry, lesion: Lesion) -> np.ndarray:
    """Pixels of ``geom``'s grid whose centre lies inside the lesion."""
    x, y = geom.pixel_centers_mm()
    return (x - lesion.x_mm) ** 2 + (y - lesion.y_mm) ** 2 < (lesion.diameter_mm / 2) ** 2


def place_lesions(classes: np.ndarray, geom: ParallelBeamGeometry, sim: PETSimulation,
                  rng: np.random.Generator, tries: int = 400) -> list[Lesion]:
    """Up to ``lesions_per_slice`` non-overlapping discs lying entirely in soft tissue."""
    x, y = geom.pixel_centers_mm()
    candidates = np.argwhere(classes == SOFT_TISSUE)
    lesions: list[Lesion] = []
    for _ in range(tries):
        if len(lesions) == sim.lesions_per_slice or not len(candidates):
            break
        r, c = candidates[rng.integers(len(candidates))]
        lesion = Lesion(float(x[r, c]), float(y[r, c]), float(rng.choice(sim.lesion_diameters_mm)), sim.lesion_suv)
        ring = Lesion(lesion.x_mm, lesion.y_mm, lesion.diameter_mm + 6.0, 0.0)  # 3 mm soft-tissue margin
        clear = all(np.hypot(lesion.x_mm - o.x_mm, lesion.y_mm - o.y_mm) > (lesion.diameter_mm + o.diameter_mm) / 2 + 6
                    for o in lesions)
        if clear and np.all(classes[disc_mask(geom, ring)] == SOFT_TISSUE):
            lesions.append(lesion)
    return lesions


def to_grid(hu: np.ndarray, pixel_spacing_mm: float, geom: ParallelBeamGeometry) -> np.ndarray:
    """Resample a CT image onto ``geom``'s grid (air padding), air outside the detector's field of view."""
    hu = np.maximum(np.asarray(hu, np.float32), -1000.0)
    scale = pixel_spacing_mm / geom.pixel_size_mm
    hu = rescale(hu, scale, order=1, anti_aliasing=scale < 1, preserve_range=True).astype(np.float32)
    n = geom.image_size
    out = np.full((n, n), -1000.0, np.float32)
    src, dst, m = max((hu.shape[0] - n) // 2, 0), max((n - hu.shape[0]) // 2, 0), min(n, hu.shape[0])
    out[dst:dst + m, dst:dst + m] = hu[src:src + m, src:src + m]
    x, y = geom.pixel_centers_mm()
    radius = min(geom.image_extent_mm, geom.n_detectors * geom.detector_pitch_mm) / 2
    out[x**2 + y**2 > (radius - 2 * geom.detector_pitch_mm) ** 2] = -1000.0
    return out


def detector_blur(sinogram: np.ndarray, fwhm_mm: float, bin_size_mm: float) -> np.ndarray:
    """Gaussian blur along the bins (views, bins)."""
    return gaussian_filter1d(sinogram, fwhm_to_sigma(fwhm_mm) / bin_size_mm, axis=-1, mode="constant")


def additive_terms(trues: np.ndarray, sim: PETSimulation) -> np.ndarray:
    """Expected scatter (trues blurred along the bins, sigma 25 mm = 59 mm FWHM) + uniform randoms (views, bins)."""
    scatter = gaussian_filter1d(trues, 25.0 / sim.bin_size_mm, axis=-1, mode="constant")
    total = sim.counts_per_slice
    scatter *= sim.scatter_fraction * total / max(scatter.sum(), 1e-12)
    randoms = np.full_like(trues, sim.randoms_fraction * total / trues.size)
    return scatter + randoms


class SimulatedSlice(NamedTuple):
    """Noiseless quantities of one simulated slice (for tests and metrics).

    Attributes
    ----------
    line_integrals : (views, bins) blurred activity line integrals, SUV mm
    multiplicative, additive : (views, bins)
    prompts : (views, bins) int64 Poisson draw
    activity, mu : (2N, 2N) SUV and 1/mm on the simulation grid
    classes : (2N, 2N) tissue class indices
    lesions : list of Lesion
    """

    line_integrals: np.ndarray
    multiplicative: np.ndarray
    additive: np.ndarray
    prompts: np.ndarray
    activity: np.ndarray
    mu: np.ndarray
    classes: np.ndarray
    lesions: list[Lesion]


def detector_efficiencies(sim: PETSimulation, rng: np.random.Generator) -> np.ndarray:
    """Normalisation: per-bin efficiencies ~ 1 +- ``normalisation_spread`` (views, bins), > 0."""
    return np.clip(1.0 + sim.normalisation_spread * rng.standard_normal((sim.n_views, sim.n_bins)), 0.5, 1.5)


def simulate_slice(hu: np.ndarray, pixel_spacing_mm: float, sim: PETSimulation, efficiencies: np.ndarray,
                   rng: np.random.Generator, projector: AstraProjector) -> SimulatedSlice:
    """One slice of prompts from a CT image in HU (steps in the module docstring).

    ``projector`` is a strip projector on ``sim.geometry(oversample=2)``.
    """
    fine = projector.geom
    classes, mu, activity = tissue_maps(to_grid(hu, pixel_spacing_mm, fine))
    lesions = place_lesions(classes, fine, sim, rng)
    for lesion in lesions:
        activity[disc_mask(fine, lesion)] = lesion.suv
    line_integrals = detector_blur(projector.forward(activity).astype(np.float64), sim.blur_fwhm_mm, sim.bin_size_mm)
    attenuation = np.exp(-projector.forward(mu).astype(np.float64))
    trues_per_k = efficiencies * attenuation * line_integrals
    k = (1.0 - sim.scatter_fraction - sim.randoms_fraction) * sim.counts_per_slice / max(trues_per_k.sum(), 1e-12)
    mult = k * efficiencies * attenuation
    add = additive_terms(k * trues_per_k, sim)
    prompts = rng.poisson(mult * line_integrals + add).astype(np.int64)
    return SimulatedSlice(line_integrals, mult, add, prompts, activity, mu, classes, lesions)


def simulate_prompts(hu: np.ndarray, pixel_spacing_mm: np.ndarray, slice_ids: list[str], patient_ids: list[str],
                     sim: PETSimulation = PETSimulation(), seed: int = 0) -> tuple[PromptStack, list[SimulatedSlice]]:
    """A prompt stack (SUV units, noiseless corrected-FBP reference) from CT images (slices, H, W) in HU."""
    seeds = np.random.SeedSequence(seed).spawn(len(hu) + 1)
    efficiencies = detector_efficiencies(sim, np.random.default_rng(seeds[0]))
    recon = CorrectedFBP(sim.geometry())
    out: list[SimulatedSlice] = []
    with AstraProjector(sim.geometry(oversample=2), use_cuda=False, kind="strip") as proj:
        for i in range(len(hu)):
            out.append(simulate_slice(hu[i], float(pixel_spacing_mm[i]), sim, efficiencies,
                                      np.random.default_rng(seeds[i + 1]), proj))
    ones = np.ones((sim.n_views, sim.n_bins))
    reference = np.stack([recon(s.line_integrals, ones, 0 * ones) for s in out])
    stack = PromptStack(np.stack([s.prompts for s in out]), np.stack([s.multiplicative for s in out]),
                        np.stack([s.additive for s in out]), sim.angles_deg, sim.bin_size_mm,
                        "SUV (g/mL), simulated", list(slice_ids), list(patient_ids), reference)
    return stack, out


class SliceTruth(NamedTuple):
    """What the lesion table needs of a simulated slice (:func:`tomoconsensus.pet.regions.slice_regions`)."""

    classes: np.ndarray
    lesions: list


def save_truth(path, sims: list[SimulatedSlice]) -> None:
    """Tissue classes and lesions of simulated slices, as plain arrays in an .npz (no pickles)."""
    most = max([len(s.lesions) for s in sims] + [1])
    lesions = np.full((len(sims), most, 4), np.nan)
    for i, s in enumerate(sims):
        for j, lesion in enumerate(s.lesions):
            lesions[i, j] = lesion
    np.savez_compressed(path, classes=np.stack([s.classes for s in sims]), lesions=lesions)


def load_truth(path) -> list[SliceTruth]:
    """The slices written by :func:`save_truth`."""
    with np.load(path, allow_pickle=False) as z:
        return [SliceTruth(c, [Lesion(*row) for row in rows if np.all(np.isfinite(row))])
                for c, rows in zip(z["classes"], z["lesions"], strict=True)]


def decayed_event_times(n: int, duration_s: float, half_life_s: float | None, rng: np.random.Generator) -> np.ndarray:
    """``n`` event times (s) of a static source decaying with ``half_life_s`` over ``[0, duration_s)``.

    Inverse-CDF sampling of the density ``λ exp(-λ t) / (1 - exp(-λ D))`` (uniform without a
    half-life): ``t = -log(1 - u (1 - exp(-λ D))) / λ``, ``u`` uniform in [0, 1).

    Returns
    -------
    ndarray (n,), float64, in [0, duration_s)
    """
    u = rng.random(n)
    if half_life_s is None:
        return u * duration_s
    lam = np.log(2.0) / half_life_s
    times = -np.log1p(-u * -np.expm1(-lam * duration_s)) / lam
    return np.minimum(times, np.nextafter(duration_s, 0.0))  # rounding at u -> 1


def listmode_events(prompts: np.ndarray, duration_s: float, half_life_s: float | None,
                    rng: np.random.Generator) -> ListMode:
    """List-mode events of a prompt histogram (slices, views, bins), time-ordered, from a static
    source decaying with ``half_life_s`` (counts in any time interval are then Poisson, as for a
    measured static acquisition). Set it as ``PromptStack.listmode`` to write a list-mode file."""
    counts = np.asarray(prompts, np.int64).ravel()
    bins = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    times = decayed_event_times(bins.size, duration_s, half_life_s, rng)
    order = np.argsort(times, kind="stable")
    return ListMode(bins[order], times[order], float(duration_s))

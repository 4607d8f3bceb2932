"""CT task phantom for ``iq``: a water disc with circular inserts, its exact fan-beam line integrals, and
noisy realisations reconstructed like prepared data.

Every object is a union of discs; the attenuation is additive, so the line integral of a ray is
``sum_i dmu_i * chord_i`` with ``chord = 2 sqrt(r^2 - d^2)`` (``d`` the distance from the disc centre
to the ray, 0 when ``d >= r``). The detector aperture is modelled by averaging ``n_sub`` equally spaced
rays across each channel (a strip integral, as the demo's ASTRA ``strip`` projector does), so the
noiseless sinogram, and hence the noiseless FBP, is known without any discretisation of the object.

Coordinates are those of docs/conventions.md: x along the columns, y up the image, mm, origin at
the isocentre; at view angle theta the source is at ``D (sin theta, -cos theta)`` and the detector
axis points along ``(cos theta, sin theta)``.

Noisy realisations (:func:`realisations`), split and reconstructed like prepared data (x1, x2, x_est;
odd/even views or count thinning, as the prepared file's ``split_kind``) and with TV: the noiseless
sinogram is exact (:func:`line_integrals`); each realisation draws the demo's measurement noise (Poisson
counts at ``dose_fraction`` of the geometry's protocol, electronic noise, one-photon floor:
:func:`tomoconsensus.ct.noise.detector_readings`) from its own seeded stream and is split and
reconstructed by :class:`tomoconsensus.ct.modality.CTModality` or
:class:`tomoconsensus.ct.countsplit.CTThinningModality`, so the images are what ``prepare ct`` would
have written for a patient of this shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tomoconsensus.ct.noise import incident_photons, mu_to_hu, simulate_low_dose
from tomoconsensus.ct.sources import slice_rngs
from tomoconsensus.tomo.geometry import FanBeamGeometry

#: Insert contrasts of the task phantom, HU above water (lung-like fat, low-contrast soft tissue,
#: enhanced tissue, bone, dense bone), as in TG-233's task-based phantoms.
INSERT_CONTRASTS_HU = (-100.0, 10.0, 50.0, 340.0, 990.0)
#: The CT splits a prepared file may have used (its ``split_kind``; files without one are view-split).
SPLITS = ("views", "thinning")


@dataclass(frozen=True)
class Disc:
    """One disc of the phantom: centre (mm), radius (mm) and attenuation it adds, HU above air/water.

    ``hu_added`` is added to whatever lies below: the body disc adds 1000 (air -> water), an insert
    of contrast C adds C on top of the water.
    """

    x_mm: float
    y_mm: float
    radius_mm: float
    hu_added: float


@dataclass(frozen=True)
class TaskPhantom:
    """The discs of a phantom, and which of them are the inserts (for the TTF)."""

    discs: tuple[Disc, ...]
    body_radius_mm: float

    @property
    def inserts(self) -> tuple[Disc, ...]:
        return self.discs[1:]


def body_radius_mm(geom: FanBeamGeometry) -> float:
    """Radius of the water body: 150 mm (a 30 cm abdomen), or less where the grid is smaller."""
    return min(150.0, 0.8 * min(geom.fov_radius_mm, geom.image_extent_mm / 2))


def uniform_phantom(geom: FanBeamGeometry) -> TaskPhantom:
    """A uniform water disc (for the NPS)."""
    r = body_radius_mm(geom)
    return TaskPhantom((Disc(0.0, 0.0, r, 1000.0),), r)


def insert_phantom(geom: FanBeamGeometry, contrasts_hu=INSERT_CONTRASTS_HU) -> TaskPhantom:
    """Water disc with inserts of radius 25 mm on a ring of radius 95 mm (both scaled with the body).

    For a 150 mm body, neighbouring inserts are 112 mm apart (centre to centre), so the edge-spread
    functions, read out to 0.9 R = 22.5 mm on either side of each edge, never meet, nor reach the body's edge.
    """
    r = body_radius_mm(geom)
    s = r / 150.0
    discs = [Disc(0.0, 0.0, r, 1000.0)]
    for i, c in enumerate(contrasts_hu):
        a = 2 * math.pi * i / len(contrasts_hu) + math.pi / 2
        discs.append(Disc(95.0 * s * math.cos(a), 95.0 * s * math.sin(a), 25.0 * s, float(c)))
    return TaskPhantom(tuple(discs), r)


def ray_directions(geom: FanBeamGeometry, n_sub: int) -> tuple[np.ndarray, np.ndarray]:
    """Source positions (V, 2) and unit ray directions (V, K, n_sub, 2) of a flat-detector fan beam."""
    theta = geom.angles_rad
    src = geom.source_to_origin_mm * np.stack([np.sin(theta), -np.cos(theta)], axis=-1)
    e = np.stack([-np.sin(theta), np.cos(theta)], axis=-1)  # source -> isocentre
    u_hat = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    u = (np.arange(geom.n_detectors) - (geom.n_detectors - 1) / 2) * geom.detector_pitch_mm
    u = u[:, None] + geom.detector_pitch_mm * ((np.arange(n_sub) + 0.5) / n_sub - 0.5)
    d = geom.source_to_detector_mm * e[:, None, None, :] + u[None, :, :, None] * u_hat[:, None, None, :]
    return src, d / np.linalg.norm(d, axis=-1, keepdims=True)


def line_integrals(phantom: TaskPhantom, geom: FanBeamGeometry, n_sub: int = 4) -> np.ndarray:
    """Exact line integrals of ``phantom`` (views, channels), dimensionless, channel aperture included.

    Parameters
    ----------
    phantom : TaskPhantom
    geom : FanBeamGeometry
        Flat detector; ``geom.protocol.mu_water_per_mm`` turns HU into attenuation (1/mm).
    n_sub : int
        Rays averaged across each channel's width (1 = a pencil ray through the channel centre).

    Returns
    -------
    ndarray, shape (n_views, n_detectors), float64
    """
    if geom.is_curved:
        raise ValueError("iq phantom: flat-detector fan beams only")
    src, v = ray_directions(geom, n_sub)
    mu_per_hu = geom.protocol.mu_water_per_mm / 1000.0
    out = np.zeros(v.shape[:3])
    for disc in phantom.discs:
        rel = np.array([disc.x_mm, disc.y_mm]) - src  # (V, 2)
        dist = rel[:, None, None, 0] * v[..., 1] - rel[:, None, None, 1] * v[..., 0]
        out += disc.hu_added * mu_per_hu * 2 * np.sqrt(np.maximum(disc.radius_mm**2 - dist**2, 0.0))
    return out.mean(axis=2)


def image_hu(phantom: TaskPhantom, geom: FanBeamGeometry, supersample: int = 8) -> np.ndarray:
    """The phantom on the geometry's grid (HU, air -1000), each pixel the mean over ``supersample^2`` points."""
    n, d = geom.image_size, geom.pixel_size_mm
    offs = (np.arange(supersample) + 0.5) / supersample - 0.5
    c = (np.arange(n) - (n - 1) / 2) * d
    xs = (c[:, None] + d * offs[None, :]).ravel()
    x, y = np.meshgrid(xs, -xs)
    hu = np.full(x.shape, -1000.0)
    for disc in phantom.discs:
        hu += disc.hu_added * ((x - disc.x_mm) ** 2 + (y - disc.y_mm) ** 2 < disc.radius_mm**2)
    return hu.reshape(n, supersample, n, supersample).mean(axis=(1, 3))

@dataclass
class Realisations:
    """Reconstructions of ``n`` noisy realisations of one phantom, HU/1000.

    Attributes
    ----------
    x1, x2, x_est : ndarray, shape (n, 1, N, N)
        FBP of the odd views, the even views and all views.
    truth : ndarray, shape (1, N, N)
        Hann FBP of the exact noiseless sinogram (the demo's ``noiseless-fbp`` reference).
    tv : ndarray or None, shape (n_tv, 1, N, N)
        TV reconstruction of the first ``n_tv`` realisations, where asked for.
    """

    x1: np.ndarray
    x2: np.ndarray
    x_est: np.ndarray
    truth: np.ndarray
    tv: np.ndarray | None = None


def noisy_sinograms(clean: np.ndarray, geom: FanBeamGeometry, dose_fraction: float, n: int,
                    seed: int) -> np.ndarray:
    """``n`` independent low-dose realisations of a noiseless sinogram: (n, views, channels) float32."""
    return np.stack([simulate_low_dose(clean, geom, dose_fraction, rng) for rng in slice_rngs(seed, n)])


def view_split(clean: np.ndarray, geom: FanBeamGeometry, dose_fraction: float, n: int, seed: int, batch: int = 8):
    """``(x1, x2, x_est, sinograms)`` of ``n`` realisations split into odd/even views (``prepare ct --split views``)."""
    from tomoconsensus.ct.modality import CTModality

    modality = CTModality(geom)
    sinos = noisy_sinograms(clean, geom, dose_fraction, n, seed)
    x1, x2 = [], []
    for s in range(0, n, batch):
        mu1, mu2 = modality.halves_attenuation(sinos[s:s + batch])
        x1.append(modality.to_units(mu1)[0][:, None])
        x2.append(modality.to_units(mu2)[0][:, None])
    x1, x2 = np.concatenate(x1), np.concatenate(x2)
    return x1, x2, ((x1 + x2) / 2).astype(np.float32), sinos


def thinning_split(clean: np.ndarray, geom: FanBeamGeometry, dose_fraction: float, n: int, seed: int):
    """``(x1, x2, x_est, sinograms)`` of ``n`` realisations split by thinning every reading's counts, all views
    in each half (``prepare ct --split thinning``, :mod:`tomoconsensus.ct.countsplit`): the readings are the
    view split's draws for the same seed, the thinning seed is drawn after them, as ``prepare ct`` does."""
    from tomoconsensus.ct.countsplit import CTThinningModality, full_line_integrals, simulate_count_sinogram

    modality = CTThinningModality(geom)
    i0 = incident_photons(geom, dose_fraction)
    images, sinos = [], []
    for rng in slice_rngs(seed, n):
        m = simulate_count_sinogram(clean, i0, geom.protocol.electronic_noise_std, rng)
        m = m._replace(split_seed=int(rng.integers(2**63)))
        images.append(modality.split_and_reconstruct(m))
        sinos.append(full_line_integrals(m))
    x1, x2, x_est = (np.stack([getattr(im, k) for im in images]) for k in ("x1", "x2", "x_est"))
    return x1, x2, x_est, np.stack(sinos)


def realisations(phantom: TaskPhantom, geom: FanBeamGeometry, dose_fraction: float, n: int, seed: int = 0,
                 tv=None, n_tv: int | None = None, split: str = "views") -> Realisations:
    """Simulate and reconstruct ``n`` realisations of ``phantom`` (see :class:`Realisations`).

    Parameters
    ----------
    dose_fraction : float
        Fraction of the geometry's full-dose protocol, in (0, 1] (a prepared file's ``dose_fraction``).
    tv : TVConfig, optional
        Also reconstruct the first ``n_tv`` (default all) realisations with TV (the ``/baselines/tv`` of
        ``prepare ct --tv``, from all the data; about 5 s each for 128^2 on one CPU core).
    split : str
        ``"views"`` (odd/even views) or ``"thinning"`` (counts), as the prepared file's ``split_kind``.
    """
    from tomoconsensus.ct.modality import CTModality

    clean = line_integrals(phantom, geom)
    if split not in SPLITS:
        raise ValueError(f"realisations: split must be one of {SPLITS}, not {split!r}")
    splitter = thinning_split if split == "thinning" else view_split
    x1, x2, x_est, sinos = splitter(clean, geom, dose_fraction, n, seed)
    out = Realisations(x1, x2, x_est, CTModality(geom).estimate(clean))
    if tv is not None:
        from tomoconsensus.ct.tv_baseline import tv_reconstruct

        mu_w = geom.protocol.mu_water_per_mm
        out.tv = np.stack([(mu_to_hu(tv_reconstruct(s, geom, tv), mu_w) / 1000.0)[None] for s in sinos[:n_tv]])
        out.tv = out.tv.astype(np.float32)
    return out

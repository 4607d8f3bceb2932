"""Noisy realisations of a task phantom, reconstructed like prepared data (x1, x2, x_est) and with TV.

The noiseless sinogram is exact (:func:`tomoconsensus.iq.phantom.line_integrals`); each realisation
draws the demo's measurement noise (Poisson counts at ``dose_fraction`` of the geometry's protocol,
electronic noise, one-photon floor: :func:`tomoconsensus.ct.noise.simulate_low_dose`) from its own
seeded stream and is split and reconstructed by :class:`tomoconsensus.ct.modality.CTModality`, so the
images are what ``prepare ct`` would have written for a patient of this shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomoconsensus.ct.noise import mu_to_hu, simulate_low_dose
from tomoconsensus.ct.sources import slice_rngs
from tomoconsensus.iq.phantom import TaskPhantom, line_integrals
from tomoconsensus.tomo.geometry import FanBeamGeometry


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


def realisations(phantom: TaskPhantom, geom: FanBeamGeometry, dose_fraction: float, n: int, seed: int = 0,
                 tv=None, n_tv: int | None = None, batch: int = 8) -> Realisations:
    """Simulate and reconstruct ``n`` realisations of ``phantom`` (see :class:`Realisations`).

    Parameters
    ----------
    dose_fraction : float
        Fraction of the geometry's full-dose protocol, in (0, 1] (a prepared file's ``dose_fraction``).
    tv : TVConfig, optional
        Also reconstruct the first ``n_tv`` (default all) realisations with TV (the ``/baselines/tv`` of
        ``prepare ct --tv``; about 5 s each for 128^2 on one CPU core).
    batch : int
        Sinograms filtered and backprojected at once.
    """
    from tomoconsensus.ct.modality import CTModality

    modality = CTModality(geom)
    clean = line_integrals(phantom, geom)
    sinos = noisy_sinograms(clean, geom, dose_fraction, n, seed)
    x1, x2 = [], []
    for s in range(0, n, batch):
        mu1, mu2 = modality.halves_attenuation(sinos[s:s + batch])
        x1.append(modality.to_units(mu1)[0][:, None])
        x2.append(modality.to_units(mu2)[0][:, None])
    x1, x2 = np.concatenate(x1), np.concatenate(x2)
    truth = modality.estimate(clean)
    out = Realisations(x1, x2, ((x1 + x2) / 2).astype(np.float32), truth)
    if tv is not None:
        from tomoconsensus.ct.tv_baseline import tv_reconstruct

        mu_w = geom.protocol.mu_water_per_mm
        out.tv = np.stack([(mu_to_hu(tv_reconstruct(s, geom, tv), mu_w) / 1000.0)[None] for s in sinos[:n_tv]])
        out.tv = out.tv.astype(np.float32)
    return out

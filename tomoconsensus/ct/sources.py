"""CT slices for preparation: simulated low dose from clean images, or measured sinograms.

Reference images for simulated data (``reference`` argument):

* ``"noiseless-fbp"`` (default): Hann FBP of the noiseless sinogram: the same geometry, filter and
  resolution as x1, x2 and x_est, without noise. Metrics then measure noise and denoising
  artefacts, not the FBP's resolution limit. This plays the role of the paper's full-dose FBP
  reference, without its residual noise.
* ``"full-dose-fbp"``: Hann FBP of an independent full-dose noise realisation (as in the paper's
  LDCT data: the reference itself is noisy).
* ``"image"``: the clean input image resampled onto the grid (includes the FBP blur in every error).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from tomoconsensus.ct.countsplit import simulate_count_sinogram
from tomoconsensus.ct.io import ImageStack, SinogramStack
from tomoconsensus.ct.noise import hu_to_mu, incident_photons, mu_to_hu, simulate_low_dose
from tomoconsensus.ct.protocol import SIMULATION_REFERENCES
from tomoconsensus.errors import InputError
from tomoconsensus.modality import Slice
from tomoconsensus.tomo.curved import fbp_operator, forward_projector
from tomoconsensus.tomo.geometry import FanBeamGeometry
from tomoconsensus.tomo.grid import support_channels, to_geometry_grid

REFERENCES = SIMULATION_REFERENCES


def slice_rngs(seed: int, n: int) -> list[np.random.Generator]:
    """Independent, reproducible generators, one per slice (independent of processing order)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def simulated_slices(stack: ImageStack, geom: FanBeamGeometry, dose_fraction: float, seed: int,
                     reference: str = "noiseless-fbp", counts: bool = False,
                     indices: Sequence[int] | None = None) -> Iterator[Slice]:
    """Low-dose sinograms simulated from clean images, with the chosen reference in HU/1000.

    With ``counts`` the measurement is the slice's :class:`~tomoconsensus.ct.countsplit.CountSinogram`
    (readings before the log, for the thinning split, with its own split seed) instead of its line
    integrals; the same seed gives the same readings either way. Slice ``i`` draws its noise from the
    ``i``-th stream of ``SeedSequence(seed)`` (:func:`slice_rngs`), so ``indices`` (default: all, in
    order) gives the same slices whichever others are simulated.
    """
    if reference not in REFERENCES:
        raise InputError("--reference", "reference", f"one of {REFERENCES}", reference)
    i0 = incident_photons(geom, dose_fraction)
    rngs = slice_rngs(seed, len(stack.hu))
    fbp = fbp_operator(geom)
    mu_w = geom.protocol.mu_water_per_mm
    # Flat detector: only the central channels can see the masked image (the others are exactly 0),
    # and ASTRA's CPU projector is single-threaded: project those channels, views split over torch's
    # threads. Curved detector: its own projector, all channels.
    n_det = geom.n_detectors if geom.is_curved else support_channels(geom)
    edge = (geom.n_detectors - n_det) // 2
    with forward_projector(dataclasses.replace(geom, n_detectors=n_det), kind="strip",
                           threads=torch.get_num_threads()) as proj:
        for i in range(len(rngs)) if indices is None else indices:
            rng = rngs[i]
            hu = to_geometry_grid(stack.hu[i], float(stack.pixel_spacing_mm[i]), geom)
            clean = np.pad(proj.forward(hu_to_mu(hu, mu_w)), ((0, 0), (edge, edge)))
            if counts:
                measurement = simulate_count_sinogram(clean, i0, geom.protocol.electronic_noise_std, rng)
            else:
                measurement = simulate_low_dose(clean, geom, dose_fraction, rng)
            if reference == "image":
                ref_hu = hu
            else:
                ref_sino = clean if reference == "noiseless-fbp" else simulate_low_dose(clean, geom, 1.0, rng)
                ref_hu = mu_to_hu(fbp(ref_sino).numpy(), mu_w)
            if counts:  # drawn last: the view split's slices stay as they were
                measurement = measurement._replace(split_seed=int(rng.integers(2**63)))
            yield Slice(stack.slice_ids[i], stack.patient_ids[i], measurement,
                        (ref_hu / 1000.0)[None].astype(np.float32))


def measured_slices(stack: SinogramStack, indices: Sequence[int] | None = None) -> Iterator[Slice]:
    """Slices from measured sinograms (``indices``: default all, in order), with the reference (HU -> HU/1000)
    where the file has one."""
    for i in range(len(stack.sinograms)) if indices is None else indices:
        sino = stack.sinograms[i]
        ref = None if stack.reference_hu is None else (stack.reference_hu[i] / 1000.0)[None].astype(np.float32)
        yield Slice(stack.slice_ids[i], stack.slice_ids[i].split("_")[0], sino, ref)

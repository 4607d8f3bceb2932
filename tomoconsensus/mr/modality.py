"""Multi-coil Cartesian MR as a :class:`~tomoconsensus.modality.Modality`.

A measurement is the 4x-undersampled k-space with its mask design (:class:`MRMeasurement`). The
split gives each half the central lines plus a random half of the sampled outer lines; each half is
reconstructed by the weighted zero-filled coil combination, weights 1 / P(line in this half), so its
expectation over masks is the fully sampled coil-combined image (zero-mean aliasing). ``x_est`` is
the SENSE reconstruction of the 4x data. Images have 2 channels (real, imaginary), multiplied by a
per-volume ``scale`` that maps the volume into [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tomoconsensus.mr.masks import SplitMask
from tomoconsensus.mr.recon import sense, to_channels, zero_filled_combination


@dataclass
class MRMeasurement:
    """One slice of undersampled multi-coil data.

    Attributes
    ----------
    kspace : (coils, ky, kx) complex64, zero on lines not in ``design.mask``
    design : SplitMask, the 4x mask, its halves and their weights
    maps : (coils, y, x) complex ESPIRiT sensitivities (from the central lines)
    scale : float, per-volume factor into [-1, 1]
    """

    kspace: np.ndarray
    design: SplitMask
    maps: np.ndarray
    scale: float


class MRModality:
    """Zero-filled halves and SENSE x_est for 4x Cartesian multi-coil data."""

    name = "mr"
    channels = 2
    units = "scaled complex image (real, imaginary), per-volume factor in [-1, 1]"

    def __init__(self, acceleration: float = 4.0, center_lines: int = 48, sense_lambda: float = 0.01,
                 sense_iterations: int = 30, device: int = -1, centre_split: bool = False):
        self.acceleration = acceleration
        self.center_lines = center_lines
        self.centre_split = centre_split  # the central lines split between the halves too
        self.sense_lambda = sense_lambda
        self.sense_iterations = sense_iterations
        self.device = device  # SigPy device for SENSE: -1 CPU, N GPU N (CuPy)

    def split(self, m: MRMeasurement, rng: np.random.Generator | None = None):
        # The random split is drawn together with the 4x mask (mr.masks.random_split_mask), when the
        # measurement is created, because its weights depend on it; here it is only applied.
        d = m.design
        return (m, d.half1, d.weight_half1), (m, d.half2, d.weight_half2)

    def reconstruct(self, half) -> np.ndarray:
        m, lines, weight = half
        image = zero_filled_combination(m.kspace * lines[None, :, None], m.maps, np.where(lines, weight, 0.0))
        return to_channels(image, m.scale)

    def estimate(self, m: MRMeasurement) -> np.ndarray:
        image = sense(m.kspace, m.maps, m.design.mask, self.sense_lambda, self.sense_iterations, self.device)
        return to_channels(image, m.scale)

    def zero_filled(self, m: MRMeasurement) -> np.ndarray:
        """The plain zero-filling baseline of the 4x data (no density weighting)."""
        return to_channels(zero_filled_combination(m.kspace, m.maps, m.design.mask.astype(float)), m.scale)

    def measurement_arrays(self, m: MRMeasurement) -> dict[str, np.ndarray]:
        """What a step after the networks needs of the raw data (stored with ``keep_measurement``):
        the acquired k-space (coils, ky, kx), the coil maps (coils, y, x), the lines of the 4x mask and
        of each half (ky,) and the slice's scale into the prepared units."""
        d = m.design
        return {"kspace": m.kspace.astype(np.complex64), "maps": m.maps.astype(np.complex64), "mask": d.mask,
                "half1": d.half1, "half2": d.half2, "weight_half1": d.weight_half1.astype(np.float32),
                "weight_half2": d.weight_half2.astype(np.float32), "scale": np.float64(m.scale)}

    # ---- data consistency after the networks (tomoconsensus.data_consistency) ----

    @staticmethod
    def consistent(image: np.ndarray, arrays: dict[str, np.ndarray], lamda: float) -> np.ndarray:
        """(2, H, W) network output -> the image closest to it that agrees with the acquired 4x lines
        (:func:`tomoconsensus.mr.consistency.data_consistency`), in the same units."""
        from tomoconsensus.mr.consistency import data_consistency, from_channels

        scale = float(arrays["scale"])
        x = data_consistency(arrays["kspace"], arrays["maps"], arrays["mask"], from_channels(image, scale), lamda)
        return to_channels(x, scale)

    @staticmethod
    def heldout_error(prior1: np.ndarray, prior2: np.ndarray, arrays: dict[str, np.ndarray], lamdas) -> np.ndarray:
        """Per lamda, the error of predicting each half's own outer lines from the other half's lines,
        with the network output from that other half's data only (``prior1`` from x1, ``prior2`` from
        x2): no reference needed (:func:`tomoconsensus.mr.consistency.heldout_error`)."""
        from tomoconsensus.mr.consistency import from_channels, heldout_error

        k, maps, scale = arrays["kspace"], arrays["maps"], float(arrays["scale"])
        h1, h2 = arrays["half1"].astype(bool), arrays["half2"].astype(bool)
        return (heldout_error(k, maps, h1, h2 & ~h1, from_channels(prior1, scale), lamdas, arrays["weight_half2"])
                + heldout_error(k, maps, h2, h1 & ~h2, from_channels(prior2, scale), lamdas, arrays["weight_half1"]))

    def attributes(self) -> dict[str, Any]:
        return {"acceleration": self.acceleration, "center_lines": self.center_lines,
                "sense_lambda": self.sense_lambda, "sense_iterations": self.sense_iterations,
                "split": ("centre lines split at random too" if self.centre_split else
                          "centre lines in both halves") + "; sampled outer lines split at random; "
                         "zero-filled halves weighted by 1 / P(line in half)"}

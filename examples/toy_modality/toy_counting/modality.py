"""Poisson counting data split by binomial thinning (implements ``tomoconsensus.modality.Modality``)."""

from __future__ import annotations

import numpy as np

#: Prepared units are events per second divided by this (images of order 1 for the network).
UNIT_SCALE = 10.0


class CountingModality:
    """Counts (H, W) of a scan of ``scan_time_s`` seconds -> images (1, H, W) in events per second / 10."""

    name = "counting"
    channels = 1
    units = "events per second / 10"

    def __init__(self, scan_time_s: float):
        self.scan_time_s = float(scan_time_s)

    def split(self, counts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Binomial thinning: each event to half 1 with probability 1/2, the rest to half 2."""
        half1 = rng.binomial(counts, 0.5)
        return half1, counts - half1

    def reconstruct(self, half: np.ndarray) -> np.ndarray:
        """2 N_half / t: unbiased for the activity (each half holds half of the expected events)."""
        return (2.0 * half / self.scan_time_s / UNIT_SCALE)[None].astype(np.float32)

    def estimate(self, counts: np.ndarray) -> np.ndarray:
        """x_est = N / t, from all the events."""
        return (counts / self.scan_time_s / UNIT_SCALE)[None].astype(np.float32)

    def attributes(self) -> dict:
        return {"scan_time_s": self.scan_time_s, "split": "binomial thinning, p = 1/2"}

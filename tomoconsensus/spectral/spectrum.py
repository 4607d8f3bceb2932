"""X-ray spectra and photon-counting energy bins.

The package ships one spectrum (``tomoconsensus/embedded/spectrum_120kvp.csv``: tungsten anode,
120 kVp, 12 degree anode angle, 2.5 mm Al, SpekPy 2.5.4, Poludniowski et al. Med. Phys. 2021; written by
``examples/spectral/make_spectrum_table.py``): the fraction of incident photons in each 1 keV bin,
summing to 1. A user's own table (CSV ``energy_kev,fraction``) is read the same way and must sum to 1
(a table of absolute fluence is refused with its sum, so that nobody mixes up normalisations).

Energy bins are ``edges_kev`` (n_bins + 1, strictly increasing); bin b counts photons with
``edges[b] <= E < edges[b + 1]`` (an ideal photon-counting detector: no charge sharing, pile-up
or energy blur).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from tomoconsensus.errors import InputError

#: How close to 1 a spectrum's fractions must sum.
SUM_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Spectrum:
    """Incident spectrum: ``energies_kev`` (n,) increasing, ``fraction`` (n,) >= 0 summing to 1."""

    energies_kev: np.ndarray
    fraction: np.ndarray
    source: str = "tomoconsensus/embedded/spectrum_120kvp.csv"

    def __post_init__(self):
        e, f = np.asarray(self.energies_kev, float), np.asarray(self.fraction, float)
        if e.ndim != 1 or e.shape != f.shape or len(e) == 0:
            raise InputError(self.source, "energy_kev, fraction", "two columns of equal length", (e.shape, f.shape))
        if not (np.all(np.isfinite(e)) and np.all(np.diff(e) > 0) and e[0] > 0):
            raise InputError(self.source, "energy_kev", "positive, strictly increasing energies", e[:5])
        if not np.all(np.isfinite(f)) or f.min() < 0:
            raise InputError(self.source, "fraction", "non-negative finite fractions", float(np.nanmin(f)))
        if abs(f.sum() - 1.0) > SUM_TOLERANCE:
            raise InputError(self.source, "fraction", "fractions of the incident photons that sum to 1 "
                             "(normalise the table: fraction / sum)", f"sum {f.sum():.6g}")

    @classmethod
    def monoenergetic(cls, energy_kev: float) -> Spectrum:
        """All photons at one energy (for tests against exact attenuation)."""
        return cls(np.array([float(energy_kev)]), np.array([1.0]), f"monoenergetic {energy_kev:g} keV")


def load_spectrum(path: str | Path | None = None) -> Spectrum:
    """The shipped 120 kVp spectrum, or a CSV ``energy_kev,fraction`` (``#`` comments allowed)."""
    if path is None:
        text = resources.files("tomoconsensus.embedded").joinpath("spectrum_120kvp.csv").read_text()
        source = "tomoconsensus/embedded/spectrum_120kvp.csv"
    else:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(path, "--spectrum", "a readable text CSV file energy_kev,fraction",
                             str(exc).split(":")[0]) from None
        source = str(path)
    try:
        table = np.loadtxt(text.splitlines(), delimiter=",", comments="#", ndmin=2)
    except ValueError as exc:
        raise InputError(source, "table", "two numeric columns energy_kev,fraction", str(exc)) from None
    if table.shape[1] != 2:
        raise InputError(source, "table", "two columns energy_kev,fraction", f"{table.shape[1]} columns")
    return Spectrum(table[:, 0], table[:, 1], source)


def check_bin_edges(edges_kev, source=None) -> np.ndarray:
    """(n_bins + 1,) strictly increasing positive energies in keV; InputError otherwise."""
    edges = np.asarray(edges_kev, dtype=float)
    if edges.ndim != 1 or len(edges) < 2:
        raise InputError(source, "bin_edges_kev", "at least 2 edges (n_bins + 1) in keV", edges.shape)
    if not (np.all(np.isfinite(edges)) and edges[0] > 0 and np.all(np.diff(edges) > 0)):
        raise InputError(source, "bin_edges_kev", "positive energy-bin edges in increasing order (keV)",
                         edges.tolist())
    return edges


def bin_membership(spectrum: Spectrum, edges_kev: np.ndarray) -> np.ndarray:
    """(n_bins, n_energies) 0/1: which spectrum energies each bin counts."""
    e = spectrum.energies_kev
    return ((e[None] >= edges_kev[:-1, None]) & (e[None] < edges_kev[1:, None])).astype(float)

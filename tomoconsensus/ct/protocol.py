"""CT's dose protocol, the ``[protocol]`` table of a fan-beam geometry file, and CT's geometry loaders.

The scan geometry itself (parallel and fan beam, flat and curved detectors) is the tomography layer's,
:mod:`tomoconsensus.tomo.geometry`; a CT geometry file adds the dose model used to simulate measured data
(required, every field, in a CT file). The loaders here are the tomography layer's with
:class:`CTDoseProtocol` as the protocol table, so a CT geometry always carries one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tomoconsensus.tomo import geometry as _geometry
from tomoconsensus.tomo.geometry import Geometry

#: References of simulated CT data (``prepare ct --reference``; :mod:`tomoconsensus.ct.sources`).
SIMULATION_REFERENCES = ("noiseless-fbp", "full-dose-fbp", "image")

def _positive_finite(v: float) -> bool:
    """a positive, finite number"""
    return math.isfinite(v) and v > 0


def _non_negative_finite(v: float) -> bool:
    """a finite number >= 0"""
    return math.isfinite(v) and v >= 0


@dataclass(frozen=True)
class CTDoseProtocol:
    """Dose and noise model used to simulate measured data from clean images.

    Attributes
    ----------
    incident_photons : float
        Full-dose incident photons per detector channel and view (I0) before the bowtie.
    electronic_noise_std : float
        Standard deviation of the additive Gaussian electronic noise, in detected photons.
    mu_water_per_mm : float
        Linear attenuation of water at the effective energy, 1/mm; defines HU.
    bowtie_water_equiv_mm : float
        Water-equivalent bowtie thickness at the fan edge (0 = no bowtie); the thickness grows
        quadratically with the fan angle.
    """

    incident_photons: float = field(default=1.5e5, metadata={"check": _positive_finite})
    electronic_noise_std: float = field(default=10.0, metadata={"check": _non_negative_finite})
    mu_water_per_mm: float = field(default=0.0193, metadata={"check": _positive_finite})
    bowtie_water_equiv_mm: float = field(default=0.0, metadata={"check": _non_negative_finite})


def geometry_from_dict(values: dict[str, Any], source: str | Path = "<dict>") -> Geometry:
    """A CT geometry (with its ``[protocol]`` table) from a TOML-like dict; see
    :func:`tomoconsensus.tomo.geometry.geometry_from_dict`."""
    return _geometry.geometry_from_dict(values, source, CTDoseProtocol)


def load_geometry(name_or_path: str | Path) -> Geometry:
    """A CT geometry by name (``geometry/<name>.toml``) or TOML path, with its dose protocol."""
    return _geometry.load_geometry(name_or_path, CTDoseProtocol)


def geometry_from_toml_text(text: str, source: str = "<embedded geometry>") -> Geometry:
    """Inverse of :func:`tomoconsensus.tomo.geometry.geometry_to_toml` for a CT geometry."""
    return _geometry.geometry_from_toml_text(text, source, CTDoseProtocol)

"""Low-dose CT simulation: HU <-> attenuation, and Poisson + electronic noise on line integrals.

The measurement model for one detector reading is

    N = Poisson(I0 * f * b(u) * exp(-p)) + Normal(0, sigma_e^2),     p_noisy = -log(max(N, 1) / (I0 f b(u)))

with ``I0`` the full-dose incident photons per channel and view, ``f`` the dose fraction (0.25
for the paper's quarter dose), ``b(u)`` the bowtie transmission and ``sigma_e`` the electronic
noise in photons. Readings are clipped at one photon so the logarithm stays finite; this only
affects rays with less than about one expected photon.
"""

from __future__ import annotations

import math

import numpy as np

from tomoconsensus.ct.protocol import CTDoseProtocol
from tomoconsensus.errors import InputError
from tomoconsensus.tomo.geometry import FanBeamGeometry


def hu_to_mu(hu: np.ndarray, mu_water_per_mm: float) -> np.ndarray:
    """Hounsfield units -> linear attenuation in 1/mm (air, HU <= -1000, maps to 0)."""
    return (mu_water_per_mm * (1.0 + np.maximum(hu, -1000.0) / 1000.0)).astype(np.float32)


def mu_to_hu(mu, mu_water_per_mm: float):
    """Linear attenuation in 1/mm -> Hounsfield units (works on NumPy arrays and tensors)."""
    return 1000.0 * (mu / mu_water_per_mm - 1.0)


def bowtie_transmission(geom: FanBeamGeometry) -> np.ndarray:
    """Bowtie transmission per detector channel, shape (n_detectors,), 1 at the centre.

    The bowtie is modelled as water whose thickness grows quadratically with the fan angle, up
    to ``protocol.bowtie_water_equiv_mm`` at the fan edge.
    """
    p = geom.protocol
    gamma = geom.channel_fan_angles_rad()
    rel = gamma / math.radians(geom.fan_angle_deg / 2)
    return np.exp(-p.mu_water_per_mm * p.bowtie_water_equiv_mm * rel**2)


def incident_photons(geom: FanBeamGeometry, dose_fraction: float) -> np.ndarray:
    """Expected photons per channel and view before the object, shape (n_detectors,)."""
    if not (0 < dose_fraction <= 1):
        raise InputError("--dose-fraction", "dose_fraction", "a number in (0, 1]", dose_fraction)
    return geom.protocol.incident_photons * dose_fraction * bowtie_transmission(geom)


def detector_readings(line_integrals: np.ndarray, i0: np.ndarray, electronic_noise_std: float,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(P, P + e)`` for noiseless line integrals (views, channels): the Poisson photons (int64) and
    what the detector reports with its electronic noise (float64, may be < 0)."""
    expected = i0 * np.exp(-np.asarray(line_integrals, dtype=np.float64))
    poisson = rng.poisson(expected).astype(np.int64)
    counts = poisson.astype(np.float64)
    if electronic_noise_std > 0:
        counts += rng.normal(0.0, electronic_noise_std, size=counts.shape)
    return poisson, counts


def simulate_counts(line_integrals: np.ndarray, i0: np.ndarray, protocol: CTDoseProtocol,
                    rng: np.random.Generator) -> np.ndarray:
    """Detected photons for noiseless line integrals (views, channels); float64, may be < 0."""
    return detector_readings(line_integrals, i0, protocol.electronic_noise_std, rng)[1]


def counts_to_line_integrals(counts: np.ndarray, i0: np.ndarray) -> np.ndarray:
    """Log transform with the one-photon floor: ``-log(max(N, 1) / I0)``, float32."""
    return (-np.log(np.maximum(counts, 1.0) / i0)).astype(np.float32)


def simulate_low_dose(line_integrals: np.ndarray, geom: FanBeamGeometry, dose_fraction: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Noisy line integrals at ``dose_fraction`` of the geometry's full-dose protocol.

    Parameters
    ----------
    line_integrals : array, shape (views, channels)
        Noiseless sinogram (dimensionless).
    geom : FanBeamGeometry
        Provides the detector layout and :class:`~tomoconsensus.tomo.geometry.CTDoseProtocol`.
    dose_fraction : float
        Fraction of the full dose, in (0, 1].
    rng : numpy.random.Generator
        Source of randomness (seed it for reproducible data).

    Returns
    -------
    numpy.ndarray
        Noisy line integrals, same shape, float32.
    """
    i0 = incident_photons(geom, dose_fraction)
    return counts_to_line_integrals(simulate_counts(line_integrals, i0, geom.protocol, rng), i0)


def dose_reduction_variance(line_integrals: np.ndarray, i0: np.ndarray, dose_fraction: float,
                            electronic_noise_std: float = 0.0) -> np.ndarray:
    """Variance to add to full-dose post-log data so that they have the noise of ``dose_fraction``.

    With the measurement model above, the post-log variance at dose ``f`` is
    ``e^p / (f I0) + sigma_e^2 e^(2p) / (f I0)^2``; subtracting the full-dose variance gives

        (1 - f)/f * e^p / I0  +  (1 - f^2)/f^2 * sigma_e^2 * e^(2p) / I0^2

    (Zeng D. et al., IEEE Trans. Nucl. Sci. 62(5), 2015), used on raw scanner projections with
    ``I0`` from their PhotonStatistics.

    Parameters
    ----------
    line_integrals : array
        Measured full-dose ``p`` (dimensionless).
    i0 : array
        Full-dose incident photons of each reading (broadcast against ``line_integrals``).
    dose_fraction : float
        Target dose / measured dose, in (0, 1].
    electronic_noise_std : float
        Electronic noise in photons.
    """
    if not (0 < dose_fraction <= 1):
        raise InputError("--dose-fraction", "dose_fraction", "a number in (0, 1]", dose_fraction)
    f = dose_fraction
    transmission = np.exp(np.asarray(line_integrals, dtype=np.float64)) / i0
    return (1 - f) / f * transmission + (1 - f * f) / (f * f) * electronic_noise_std**2 * transmission**2

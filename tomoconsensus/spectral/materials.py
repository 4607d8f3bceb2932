"""Linear attenuation of the basis materials, from the xraydb tables (Elam, Ravel and Sieber 2002).

Units: 1/mm per unit *amount* of the material, where the amount is

* ``water``: volume fraction of water at 1.000 g/cm^3 (1 in water; soft tissue about 1.0-1.06);
* ``bone``: volume fraction of ICRU-44 cortical bone (1.92 g/cm^3; mass fractions below);
* ``iodine``: concentration in mg/mL (iodine dissolved in the other materials, their volume unchanged).

An object is ``mu(x, E) = sum_m c_m(x) mu_m(E)`` (:func:`attenuation_table`).
"""

from __future__ import annotations

import numpy as np

MATERIALS = ("water", "bone", "iodine")

#: ICRU Report 44 cortical bone: density (g/cm^3) and mass fractions.
CORTICAL_BONE_DENSITY = 1.92
CORTICAL_BONE = {"H": 0.034, "C": 0.155, "N": 0.042, "O": 0.435, "Na": 0.001, "Mg": 0.002, "P": 0.103,
                 "S": 0.003, "Ca": 0.225}


def mass_attenuation_cm2_g(element: str, energies_kev) -> np.ndarray:
    """Total mass attenuation coefficient (with coherent scattering), cm^2/g."""
    import xraydb

    return np.asarray(xraydb.mu_elam(element, np.asarray(energies_kev, float) * 1e3, kind="total"), float)


def attenuation_per_mm(material: str, energies_kev) -> np.ndarray:
    """mu (1/mm) of one unit of ``material`` (module docstring) at each energy (keV)."""
    e = np.atleast_1d(np.asarray(energies_kev, float))
    if material == "water":
        mass = (2 * 1.008 * mass_attenuation_cm2_g("H", e) + 15.999 * mass_attenuation_cm2_g("O", e)) / 18.015
        return mass * 1.0 / 10.0
    if material == "bone":
        mass = sum(w * mass_attenuation_cm2_g(el, e) for el, w in CORTICAL_BONE.items()) / sum(CORTICAL_BONE.values())
        return mass * CORTICAL_BONE_DENSITY / 10.0
    if material == "iodine":  # 1 mg/mL = 1e-3 g/cm^3
        return mass_attenuation_cm2_g("I", e) * 1e-3 / 10.0
    raise ValueError(f"material: expected one of {MATERIALS}, got {material!r}")


def attenuation_table(materials, energies_kev) -> np.ndarray:
    """(n_materials, n_energies) mu per unit amount, 1/mm."""
    return np.stack([attenuation_per_mm(m, energies_kev) for m in materials])

"""Photon-counting CT: expected bin counts, their linearisation, image-domain decomposition, VMI.

Forward model (ideal detector, ``i0`` photons per detector element and view over all energies):

.. math::

    \\bar N_b = i_0 \\sum_E s(E)\\,[E \\in b]\\,\\exp\\Big(-\\sum_m A_m\\,\\mu_m(E)\\Big),
    \\qquad A_m = \\int c_m\\,dl \\ \\text{(mm x amount)}

with ``s`` the spectrum (fractions summing to 1) and ``mu_m`` per unit amount of material m
(:mod:`tomoconsensus.spectral.materials`). Each bin's log data ``p_b = -ln(N_b / F_b)``
(``F_b = i0 sum_{E in b} s(E)``, the flat field) is reconstructed by FBP into ``mu_b(x)``, an
effective attenuation of the bin. To first order around a water path ``T`` (the reference, chosen
near the object's typical path),

.. math::

    \\mu_b(x) \\approx \\sum_m M_{bm}\\,c_m(x), \\qquad
    M_{bm} = \\frac{\\sum_{E \\in b} s(E) e^{-\\mu_w(E) T} \\mu_m(E)}{\\sum_{E \\in b} s(E) e^{-\\mu_w(E) T}},

so that materials follow from the bin images by least squares, pixel by pixel, ``c = M^+ mu``
(:func:`decompose`); this is linear in the images, so unbiased images stay unbiased. A virtual
monoenergetic image (VMI) at energy E is ``sum_m c_m mu_m(E)`` (:func:`vmi_hu`). Beam hardening
within a bin (the second order) is not corrected; narrow bins keep it small.
"""

from __future__ import annotations

import numpy as np

from tomoconsensus.spectral.materials import attenuation_per_mm, attenuation_table
from tomoconsensus.spectral.spectrum import Spectrum, bin_membership


def flat_field(spectrum: Spectrum, edges_kev: np.ndarray, i0: float) -> np.ndarray:
    """(n_bins,) expected counts without an object."""
    return i0 * bin_membership(spectrum, edges_kev) @ spectrum.fraction


def expected_counts(line_integrals: np.ndarray, materials, spectrum: Spectrum, edges_kev: np.ndarray,
                    i0: float) -> np.ndarray:
    """Mean counts per bin.

    Parameters
    ----------
    line_integrals : (n_materials, ...) mm x amount, ``A_m`` of each ray
    materials : names, in the order of ``line_integrals``
    spectrum, edges_kev, i0 : see module docstring

    Returns
    -------
    (n_bins, ...) float64
    """
    mu = attenuation_table(materials, spectrum.energies_kev)  # (m, E)
    a = np.asarray(line_integrals, float)
    exponent = np.tensordot(a, mu, axes=([0], [0]))  # (..., E)
    weights = bin_membership(spectrum, edges_kev) * spectrum.fraction  # (b, E)
    counts = np.tensordot(np.exp(-exponent), weights, axes=([-1], [1]))  # (..., b)
    return i0 * np.moveaxis(counts, -1, 0)


def bin_attenuation_matrix(materials, spectrum: Spectrum, edges_kev: np.ndarray,
                           reference_water_mm: float) -> np.ndarray:
    """(n_bins, n_materials) ``M``: effective mu (1/mm per unit amount) of each material in each bin."""
    e = spectrum.energies_kev
    weights = bin_membership(spectrum, edges_kev) * spectrum.fraction * np.exp(
        -attenuation_per_mm("water", e) * reference_water_mm)
    empty = weights.sum(1) == 0
    if empty.any():
        raise ValueError(f"energy bins {np.flatnonzero(empty).tolist()} receive no photons of the spectrum")
    return weights @ attenuation_table(materials, e).T / weights.sum(1, keepdims=True)


def decompose(bin_mu: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Bin images (n_bins, H, W) in 1/mm -> material images (n_materials, H, W), least squares."""
    b = bin_mu.shape[0]
    flat = np.linalg.pinv(matrix) @ np.asarray(bin_mu, float).reshape(b, -1)
    return flat.reshape((matrix.shape[1],) + bin_mu.shape[1:])


def vmi_hu(materials_img: np.ndarray, materials, energy_kev: float = 70.0) -> np.ndarray:
    """Virtual monoenergetic image in HU at ``energy_kev`` from material images (n_materials, H, W)."""
    mu = attenuation_table(materials, [energy_kev])[:, 0]
    mu_e = np.tensordot(mu, materials_img, axes=([0], [0]))
    water = float(attenuation_per_mm("water", [energy_kev])[0])
    return 1000.0 * (mu_e / water - 1.0)


class WaterPrecorrection:
    """Per-bin water beam-hardening correction of the log data (the first step of every CT scanner's chain).

    For water alone, bin b's log data is ``f_b(L) = -ln(sum_E w_b(E) e^{-mu_w(E) L} / sum_E w_b(E))``
    (``w_b`` the bin's share of the spectrum), a concave function of the water path L. The correction
    maps ``p -> M_b,water * f_b^{-1}(p)``: water rays become exactly linear in L with the bin's
    effective attenuation at the reference path, so water is flat (no cupping) in every bin, and the
    linear model ``mu_b = sum_m M_bm c_m`` holds to first order in the other materials around the
    water path of each ray rather than around one reference path. It is smooth and monotone, so zero-mean
    noise in ``p`` stays zero-mean to first order.

    Parameters
    ----------
    spectrum, edges_kev : see module docstring
    water_per_mm : (n_bins,) the bins' effective water attenuation (``M[:, 0]``), 1/mm
    max_path_mm : longest water path tabulated (paths beyond are extrapolated linearly)
    """

    def __init__(self, spectrum: Spectrum, edges_kev: np.ndarray, water_per_mm: np.ndarray,
                 max_path_mm: float = 800.0, n_points: int = 801):
        self.paths_mm = np.linspace(0.0, max_path_mm, n_points)
        weights = bin_membership(spectrum, edges_kev) * spectrum.fraction  # (b, E)
        att = np.exp(-np.outer(self.paths_mm, attenuation_per_mm("water", spectrum.energies_kev)))  # (L, E)
        self.log_water = -np.log(att @ weights.T / weights.sum(1))  # (L, b), increasing in L
        self.water_per_mm = np.asarray(water_per_mm, float)

    def __call__(self, log_data: np.ndarray) -> np.ndarray:
        """(bins, ...) measured log data -> corrected log data, same shape."""
        out = np.empty_like(log_data, dtype=float)
        for b, p in enumerate(log_data):
            table, paths = self.log_water[:, b], self.paths_mm
            slope = (paths[-1] - paths[-2]) / (table[-1] - table[-2])
            path = np.interp(p, table, paths, left=None)
            path = np.where(p > table[-1], paths[-1] + (p - table[-1]) * slope, path)
            path = np.where(p < 0, p / self.water_per_mm[b], path)  # below air: linear (noise)
            out[b] = self.water_per_mm[b] * path
        return out

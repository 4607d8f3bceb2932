"""What a spectral CT study reports beyond the bin images: materials, a 70 keV VMI and iodine ROIs.

Works on images in the prepared units (bins, H, W) of one slice, with the prepared file's attributes
(``bin_attenuation_matrix_per_mm``, ``materials``), so it applies equally to x_est, a network's output
and the reference:

* :func:`material_images`: ``c = M^+ mu_b`` per pixel (linear; :mod:`tomoconsensus.spectral.physics`);
* :func:`vmi_70kev_hu`: the virtual monoenergetic image at 70 keV, in HU;
* :func:`iodine_rois`: mean iodine (mg/mL) in each insert, inside half the insert's diameter (away
  from the edge blur), from the true iodine map of the count file.
"""

from __future__ import annotations

import json

import numpy as np
from scipy import ndimage

from tomoconsensus.spectral.physics import decompose, vmi_hu


def matrix_of(attrs: dict) -> tuple[np.ndarray, tuple[str, ...]]:
    """The bin attenuation matrix (bins, materials) and material names of a prepared file."""
    materials = attrs["materials"]
    materials = json.loads(materials) if isinstance(materials, str) else list(materials)
    return np.asarray(json.loads(attrs["bin_attenuation_matrix_per_mm"])), tuple(materials)


def material_images(image: np.ndarray, attrs: dict) -> np.ndarray:
    """(bins, H, W) bin HU/1000 -> (materials, H, W) amounts (water fraction, mg/mL iodine, ...)."""
    matrix, _ = matrix_of(attrs)
    bin_mu = (np.asarray(image, float) + 1.0) * matrix[:, 0, None, None]
    return decompose(bin_mu, matrix)


def vmi_70kev_hu(image: np.ndarray, attrs: dict) -> np.ndarray:
    """(bins, H, W) bin HU/1000 -> (H, W) virtual monoenergetic image at 70 keV, HU."""
    _, materials = matrix_of(attrs)
    return vmi_hu(material_images(image, attrs), materials, 70.0)


def insert_masks(iodine_truth: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Central ROIs (half the diameter) of the iodine inserts of a true map (H, W): (mask, mg/mL)."""
    labels, n = ndimage.label(iodine_truth > 0)
    rois = []
    for k in range(1, n + 1):
        region = labels == k
        radius = np.sqrt(region.sum() / np.pi)
        core = ndimage.binary_erosion(region, iterations=max(1, int(round(radius / 2))))
        rois.append((core if core.any() else region, float(np.median(iodine_truth[region]))))
    return rois


def iodine_rois(image: np.ndarray, attrs: dict, iodine_truth: np.ndarray) -> list[dict]:
    """Measured mean iodine of every insert of one slice: ``[{"true", "measured"}, ...]`` in mg/mL."""
    names = matrix_of(attrs)[1]
    iodine = material_images(image, attrs)[names.index("iodine")]
    return [{"true": true, "measured": float(iodine[mask].mean())} for mask, true in insert_masks(iodine_truth)]

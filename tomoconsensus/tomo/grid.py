"""Clean CT images onto a geometry's reconstruction grid, ready for forward projection."""

from __future__ import annotations

import math

import numpy as np
from skimage.transform import rescale

from tomoconsensus.tomo.geometry import FanBeamGeometry

AIR_HU = -1000.0


def to_geometry_grid(hu: np.ndarray, pixel_spacing_mm: float, geom: FanBeamGeometry) -> np.ndarray:
    """Resample a clean image onto the geometry's grid and mask it to the scan field of view.

    The image is rescaled to ``geom.pixel_size_mm`` (linear interpolation, anti-aliased when
    shrinking), centre-cropped or padded with air to ``geom.image_size``, clipped to >= -1000 HU
    (scanner padding values such as -3024 HU become air), and set to air outside the circle that
    every view sees, so the simulated data are never truncated.

    Returns
    -------
    ndarray, shape (image_size, image_size), float32, HU
    """
    hu = np.maximum(np.asarray(hu, dtype=np.float32), AIR_HU)
    scale = pixel_spacing_mm / geom.pixel_size_mm
    if abs(scale - 1) > 1e-6:
        hu = rescale(hu, scale, order=1, anti_aliasing=scale < 1, preserve_range=True).astype(np.float32)
    n = geom.image_size
    out = np.full((n, n), AIR_HU, dtype=np.float32)
    src0 = max((hu.shape[0] - n) // 2, 0)
    dst0 = max((n - hu.shape[0]) // 2, 0)
    m = min(n, hu.shape[0])
    out[dst0:dst0 + m, dst0:dst0 + m] = hu[src0:src0 + m, src0:src0 + m]
    x, y = geom.pixel_centers_mm()
    radius = min(geom.fov_radius_mm, geom.image_extent_mm / 2)
    out[x**2 + y**2 > radius**2] = AIR_HU
    return out



def support_channels(geom: FanBeamGeometry) -> int:
    """Central detector channels whose rays can meet an image from :func:`to_geometry_grid`.

    Such an image is exactly zero attenuation (air) beyond ``r = min(fov radius, extent/2)``; pixels
    reach ``r + pixel`` at most. A ray at detector coordinate ``u`` passes the isocentre at distance
    ``D u / sqrt(D_sd^2 + u^2)``, so channels with ``|u| > u_max = r' D_sd / sqrt(D^2 - r'^2)`` (plus two
    channels of margin for the strip width) see only zeros. The count keeps the parity of
    ``n_detectors``, so the kept channels sit exactly where they sit on the full detector.
    """
    r = min(geom.fov_radius_mm, geom.image_extent_mm / 2) + geom.pixel_size_mm
    d, d_sd = geom.source_to_origin_mm, geom.source_to_detector_mm
    if r >= d:
        return geom.n_detectors
    u_max = r * d_sd / math.sqrt(d**2 - r**2)
    half = math.ceil(u_max / geom.detector_pitch_mm) + 2
    return min(geom.n_detectors, 2 * half + geom.n_detectors % 2)

"""Compiled Joseph projector for 2-D fan beams with per-view sources (Numba, all cores).

Joseph's method (P. M. Joseph, "An improved algorithm for reprojecting rays through pixel images",
IEEE TMI 1(3) 192-196, 1982): a ray is sampled once per image column (when it runs closer to the
x axis than to the y axis, else once per row); at each sample the image is interpolated linearly
between the two nearest pixels of that column, and the samples are summed times the ray length per
column, ``pixel / |cos(angle to the axis)|``. Pixels outside the grid are zero.

Ray ``(v, k)`` starts at the source ``S_v = R_v (sin theta_v, -cos theta_v)`` and runs along
``d = cos(gamma_k) e_v + sin(gamma_k) u_v``, with ``e_v = (-sin theta_v, cos theta_v)`` towards the
isocentre and ``u_v = (cos theta_v, sin theta_v)``: the equiangular (curved-detector) rays of
:mod:`tomoconsensus.tomo.curved`, each computed exactly, with no resampling. Image axes as in
:meth:`tomoconsensus.tomo.geometry.Geometry.pixel_centers_mm`: column ``i`` at ``x = (i - c) p``, row
``j`` at ``y = (c - j) p``, ``c = (N - 1) / 2``.

:func:`joseph_forward` and :func:`joseph_adjoint` are exact transposes (the same weights, gathered or
scattered); the adjoint gives each thread its own image and sums them.
"""

from __future__ import annotations

import numba
import numpy as np

from tomoconsensus.tomo import backproject as _threading  # noqa: F401  (selects Numba's workqueue layer)


@numba.njit(inline="always", nogil=True, cache=True)
def _ray(cb, sb, r, cg, sg, n, pixel):  # pragma: no cover
    """Sampling of the ray with source angle (cos, sin) = (cb, sb), source distance ``r`` and fan angle
    (cos, sin) = (cg, sg): (along_x, first, last, b0, db, step) in pixel units.

    Samples ``i = first .. last`` lie on the lines ``i`` of the major axis (columns when along_x);
    the minor coordinate at sample ``i`` is ``b0 + i db`` (fractional row or column index) and each
    sample carries the length ``step`` (mm).
    """
    sx, sy = r * sb, -r * cb  # source
    dx, dy = cg * -sb + sg * cb, cg * cb + sg * sb  # cos(gamma) e + sin(gamma) u
    c = (n - 1) / 2.0
    along_x = abs(dx) >= abs(dy)
    if along_x:  # column i at x = (i - c) p; row coordinate b = c - y / p
        t0, dt = (-c * pixel - sx) / dx, pixel / dx
        b0, db = c - (sy + t0 * dy) / pixel, -dt * dy / pixel
        step = pixel / abs(dx)
    else:  # row j at y = (c - j) p; column coordinate a = c + x / p
        t0, dt = (c * pixel - sy) / dy, -pixel / dy
        b0, db = c + (sx + t0 * dx) / pixel, dt * dx / pixel
        step = pixel / abs(dy)
    # samples with -1 < b0 + i db < n (the two interpolated pixels touch the grid), 0 <= i < n
    if db == 0.0:
        first, last = (0, n - 1) if -1.0 < b0 < n else (0, -1)
    else:
        lo_i, hi_i = (-1.0 - b0) / db, (n - b0) / db
        if lo_i > hi_i:
            lo_i, hi_i = hi_i, lo_i
        first = max(0, int(np.floor(lo_i)) + 1)
        last = min(n - 1, int(np.ceil(hi_i)) - 1)
    # only the part of the line in front of the source: t0 + i dt >= 0
    if dt > 0:
        first = max(first, int(np.ceil(-t0 / dt)))
    else:
        last = min(last, int(np.floor(-t0 / dt)))
    return along_x, first, last, b0, db, step


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _forward(image, cos_t, sin_t, radius, cos_g, sin_g, pixel, out):  # pragma: no cover
    n = image.shape[0]
    n_views, n_det = out.shape
    for v in numba.prange(n_views):
        for k in range(n_det):
            along_x, first, last, b0, db, step = _ray(cos_t[v], sin_t[v], radius[v], cos_g[k], sin_g[k], n, pixel)
            total = 0.0
            for i in range(first, last + 1):
                b = b0 + i * db
                j = int(np.floor(b))
                f = b - j
                lo = 0.0
                hi = 0.0
                if along_x:
                    if j >= 0:
                        lo = image[j, i]
                    if j + 1 < n:
                        hi = image[j + 1, i]
                else:
                    if j >= 0:
                        lo = image[i, j]
                    if j + 1 < n:
                        hi = image[i, j + 1]
                total += lo + (hi - lo) * f
            out[v, k] = total * step
    return out


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _adjoint(sino, cos_t, sin_t, radius, cos_g, sin_g, pixel, n, parts):  # pragma: no cover
    n_views, n_det = sino.shape
    images = np.zeros((parts, n, n))
    chunk = (n_views + parts - 1) // parts
    for p in numba.prange(parts):
        image = images[p]
        for v in range(p * chunk, min(n_views, (p + 1) * chunk)):
            for k in range(n_det):
                along_x, first, last, b0, db, step = _ray(cos_t[v], sin_t[v], radius[v], cos_g[k], sin_g[k], n,
                                                          pixel)
                value = sino[v, k] * step
                for i in range(first, last + 1):
                    b = b0 + i * db
                    j = int(np.floor(b))
                    f = b - j
                    if along_x:
                        if j >= 0:
                            image[j, i] += value * (1.0 - f)
                        if j + 1 < n:
                            image[j + 1, i] += value * f
                    else:
                        if j >= 0:
                            image[i, j] += value * (1.0 - f)
                        if j + 1 < n:
                            image[i, j + 1] += value * f
    return images.sum(axis=0)


def _rays(angles_rad, source_to_origin_mm, fan_angles_rad):
    theta = np.asarray(angles_rad, dtype=np.float64)
    gamma = np.asarray(fan_angles_rad, dtype=np.float64)
    return (np.cos(theta), np.sin(theta), np.asarray(source_to_origin_mm, dtype=np.float64),
            np.cos(gamma), np.sin(gamma))


def joseph_forward(image: np.ndarray, angles_rad, source_to_origin_mm, fan_angles_rad,
                   pixel_size_mm: float) -> np.ndarray:
    """Line integrals through ``image`` along the fan-beam rays.

    Parameters
    ----------
    image : ndarray, shape (N, N)
        Values per mm (e.g. attenuation, 1/mm), axes as in the module docstring.
    angles_rad, source_to_origin_mm : ndarray, shape (V,)
        Source angle ``theta_v`` (rad) and distance ``R_v`` (mm) of each view.
    fan_angles_rad : ndarray, shape (K,)
        Fan angle ``gamma_k`` of each channel (rad).
    pixel_size_mm : float

    Returns
    -------
    ndarray, shape (V, K), float32
        ``sum_i image(ray sample i) * step`` (dimensionless for 1/mm images), float64 accumulation.
    """
    rays = _rays(angles_rad, source_to_origin_mm, fan_angles_rad)
    out = np.empty((len(rays[0]), len(rays[3])), dtype=np.float64)
    _forward(np.ascontiguousarray(image, dtype=np.float64), *rays, float(pixel_size_mm), out)
    return out.astype(np.float32)


def joseph_adjoint(sinogram: np.ndarray, angles_rad, source_to_origin_mm, fan_angles_rad,
                   pixel_size_mm: float, image_size: int) -> np.ndarray:
    """Exact transpose of :func:`joseph_forward`: sinogram (V, K) -> image (N, N), float32."""
    rays = _rays(angles_rad, source_to_origin_mm, fan_angles_rad)
    parts = max(1, numba.get_num_threads())
    image = _adjoint(np.ascontiguousarray(sinogram, dtype=np.float64), *rays, float(pixel_size_mm),
                     int(image_size), parts)
    return image.astype(np.float32)

"""Compiled CPU backprojection for :class:`tomoconsensus.tomo.fbp.FBP` (Numba, all cores, float32).

For each pixel ``(x, y)`` (mm) and view ``v`` with angle ``theta_v`` and angular weight ``w_v``, the
filtered sinogram ``q_v`` is sampled at the detector position of the pixel and accumulated:

    fan beam:       m = D / (D + y cos - x sin),   u = m (x cos + y sin) / du,   image += w_v m^2 q_v(u)
    parallel beam:  m = 1,                         u =   (x cos + y sin) / du,   image += w_v     q_v(u)

``D`` is the source-to-isocentre distance (mm), ``du`` the channel pitch on the (virtual) detector
through the isocentre (mm) and ``q_v(u)`` linear interpolation between channels, zero beyond the
detector. This is the same arithmetic, in the same float32 operations, as the torch loop in
``FBP.backproject`` (used on GPUs), so the two agree to float32 round-off; only the summation order
differs. The geometry (``m``, ``u``) of a pixel and view is computed once and shared by every image of
the batch, and the loop keeps one block of output pixels and one view's filtered row in cache, where
the torch loop on a CPU streams a dozen ``N^2`` temporaries through memory per view.
"""

from __future__ import annotations

import numba
import numpy as np

# Numba's own thread pool, not OpenMP: a second OpenMP runtime beside torch's leaves spinning
# threads that made every later torch CPU operation (training after preparation) 30-100x slower.
if numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"

#: Output pixels accumulated together (one block stays in L1 while all views pass over it).
BLOCK = 1024


@numba.njit(inline="always", nogil=True, cache=True)
def _accumulate(flat, shape, v, lo, frac, weight, acc):  # pragma: no cover
    """acc[b, j] += weight[j] * (row v of image b, linearly interpolated at lo[j] + frac[j])."""
    n_views, row = shape
    for b in range(acc.shape[0]):
        base = (b * n_views + v) * row
        a = acc[b]
        for j in range(acc.shape[1]):
            left = flat[base + lo[j]]
            a[j] += ((flat[base + lo[j] + 1] - left) * frac[j] + left) * weight[j]


def _run(kernel, filtered: np.ndarray, threads: int, *args) -> np.ndarray:
    """Pad the channels with one zero each side, run ``kernel`` on ``threads`` Numba threads."""
    padded = np.ascontiguousarray(np.pad(filtered, ((0, 0), (0, 0), (1, 1))), dtype=np.float32)
    out = np.empty((filtered.shape[0], args[-1]), dtype=np.float32)
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        kernel(padded, *args[:-1], out)
    finally:
        numba.set_num_threads(previous)
    return out


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _backproject(padded, cos_du, sin_du, cos, sin, weights, x, y, d, centre, upper, fan, out):  # pragma: no cover
    batch, n_views, row = padded.shape[0], padded.shape[1], padded.shape[2]
    flat = padded.reshape(-1)
    n_pix = x.shape[0]
    n_blocks = (n_pix + BLOCK - 1) // BLOCK
    zero = np.float32(0.0)
    for blk in numba.prange(n_blocks):
        start = blk * BLOCK
        n = min(start + BLOCK, n_pix) - start
        xb, yb = x[start:start + n], y[start:start + n]
        acc = np.zeros((batch, n), dtype=np.float32)
        lo = np.empty(n, dtype=np.int64)
        frac = np.empty(n, dtype=np.float32)
        weight = np.empty(n, dtype=np.float32)
        for v in range(n_views):
            c, s, w = cos[v], sin[v], weights[v]
            cd, sd = cos_du[v], sin_du[v]
            # geometry of this view for the block (vectorises: no gathers)
            for j in range(n):
                if fan:
                    inv = d / (yb[j] * c - xb[j] * s + d)
                    pos = (xb[j] * cd + yb[j] * sd) * inv
                    weight[j] = inv * inv * w
                else:
                    pos = xb[j] * cd + yb[j] * sd
                    weight[j] = w
                pos = min(max(pos + centre, zero), upper)
                k = np.int32(pos)
                frac[j] = pos - np.float32(k)
                lo[j] = k
            # interpolate and accumulate every image of the batch (gathers)
            _accumulate(flat, (n_views, row), v, lo, frac, weight, acc)
        for b in range(batch):
            out[b, start:start + n] = acc[b]
    return out


def backproject_cpu(filtered: np.ndarray, cos: np.ndarray, sin: np.ndarray, weights: np.ndarray,
                    x: np.ndarray, y: np.ndarray, du: float, source_to_origin_mm: float | None,
                    threads: int) -> np.ndarray:
    """Weighted backprojection of filtered sinograms on the CPU.

    Parameters
    ----------
    filtered : ndarray, shape (B, V, C), float32
        Pre-weighted, ramp-filtered sinograms.
    cos, sin, weights : ndarray, shape (V,), float32
        ``cos theta_v``, ``sin theta_v`` and the angular weight of each view (rad).
    x, y : ndarray, shape (P,), float32
        Pixel centres (mm).
    du : float
        Channel pitch on the virtual detector through the isocentre (mm).
    source_to_origin_mm : float or None
        ``D`` for fan beam; None for parallel beam.
    threads : int
        Numba threads to use (at most the number Numba started with).

    Returns
    -------
    ndarray, shape (B, P), float32
    """
    n_det = filtered.shape[-1]
    f32 = np.float32
    cos_du = (cos / f32(du)).astype(f32)
    sin_du = (sin / f32(du)).astype(f32)
    fan = source_to_origin_mm is not None
    # Zero channels each side (in _run): rays that miss the detector contribute nothing.
    return _run(_backproject, filtered, threads, cos_du, sin_du, cos, sin, weights, x, y,
                f32(source_to_origin_mm if fan else 0.0), f32((n_det - 1) / 2 + 1), f32(n_det + 1 - 1e-3), fan,
                x.shape[0])


@numba.njit(inline="always", nogil=True, cache=True, error_model="numpy")
def _atan(t):  # pragma: no cover
    """arctan of a float32, branch-free so that the pixel loop vectorises (Cephes ``atanf``: the
    argument is reduced to |x| <= tan(pi/8) and a degree-9 odd polynomial; error ~1e-7 rad)."""
    f32 = np.float32
    a = abs(t)
    big, mid = a > f32(2.414213562373095), a > f32(0.4142135623730950)
    num = f32(-1.0) if big else (a - f32(1.0) if mid else a)
    den = a if big else (a + f32(1.0) if mid else f32(1.0))
    offset = f32(1.5707963267948966) if big else (f32(0.7853981633974483) if mid else f32(0.0))
    x = num / den
    z = x * x
    poly = (((f32(8.05374449538e-2) * z - f32(1.38776856032e-1)) * z + f32(1.99777106478e-1)) * z
            - f32(3.33329491539e-1)) * z * x + x + offset
    return -poly if t < f32(0.0) else poly


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _backproject_curved(padded, cos, sin, radius, weights, x, y, inv_dgamma, centre, upper, out):  # pragma: no cover
    batch, n_views, row = padded.shape[0], padded.shape[1], padded.shape[2]
    flat = padded.reshape(-1)
    n_pix = x.shape[0]
    n_blocks = (n_pix + BLOCK - 1) // BLOCK
    zero = np.float32(0.0)
    for blk in numba.prange(n_blocks):
        start = blk * BLOCK
        n = min(start + BLOCK, n_pix) - start
        xb, yb = x[start:start + n], y[start:start + n]
        acc = np.zeros((batch, n), dtype=np.float32)
        lo = np.empty(n, dtype=np.int64)
        frac = np.empty(n, dtype=np.float32)
        weight = np.empty(n, dtype=np.float32)
        for v in range(n_views):
            c, s, r, w = cos[v], sin[v], radius[v], weights[v]
            for j in range(n):
                along = yb[j] * c - xb[j] * s + r  # source -> pixel, along the central ray (> 0 inside R)
                across = xb[j] * c + yb[j] * s  # perpendicular to it
                # a pixel behind the source (only in a grid wider than the source circle) gets nothing
                weight[j] = w / (along * along + across * across) if along > zero else zero
                pos = min(max(_atan(across / along) * inv_dgamma + centre, zero), upper)
                k = np.int32(pos)
                frac[j] = pos - np.float32(k)
                lo[j] = k
            _accumulate(flat, (n_views, row), v, lo, frac, weight, acc)
        for b in range(batch):
            out[b, start:start + n] = acc[b]
    return out


def backproject_curved_cpu(filtered: np.ndarray, cos: np.ndarray, sin: np.ndarray, radius: np.ndarray,
                           weights: np.ndarray, x: np.ndarray, y: np.ndarray, dgamma: float,
                           threads: int) -> np.ndarray:
    """Weighted equiangular (curved-detector) backprojection on the CPU.

    For pixel ``(x, y)`` and view ``v`` with source at distance ``R_v`` and angle ``theta_v``:
    ``L e = R_v + y cos - x sin`` (along the central ray), ``L u = x cos + y sin`` (across it),
    ``gamma = atan(L u / L e)`` (the pixel is in front of the source, ``L e > 0``) and
    ``image += w_v q_v(gamma / dgamma) / L^2``: the arithmetic of the torch loop of
    :meth:`tomoconsensus.tomo.curved.CurvedFBP.backproject` (GPUs), with ``atan`` as a branch-free
    polynomial (:func:`_atan`, 1.4e-7 rad) instead of ``atan2``, so that the pixel loop vectorises
    (3.6x less CPU time than with ``atan2``).

    Parameters
    ----------
    filtered : ndarray, shape (B, V, C), float32
    cos, sin, radius, weights : ndarray, shape (V,), float32
        ``cos theta_v``, ``sin theta_v``, ``R_v`` (mm) and the angular weight of each view.
    x, y : ndarray, shape (P,), float32
        Pixel centres (mm).
    dgamma : float
        Channel pitch (rad).

    Returns
    -------
    ndarray, shape (B, P), float32
    """
    n_det = filtered.shape[-1]
    f32 = np.float32
    return _run(_backproject_curved, filtered, threads, cos, sin, radius, weights, x, y, f32(1.0 / dgamma),
                f32((n_det - 1) / 2 + 1), f32(n_det + 1 - 1e-3), x.shape[0])

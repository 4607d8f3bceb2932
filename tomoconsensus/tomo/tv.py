"""Total variation: the gradient / divergence pair and TV-regularised reconstruction (Chambolle-Pock).

For an image ``u`` in some unit (CT: water units, its ``tv_baseline``) and line
integrals ``y`` of ``x = unit * u``, :func:`tv_solve` solves

    min_u  1/2 ||B u - y / (||A|| unit)||^2  +  lam * TV(u)   s.t. u >= 0,

with ``B = A / ||A||`` for the projector ``A`` (and its exact transpose) and isotropic TV in pixel
units. Normalising by ``||A||`` and working in ``unit`` makes ``lam`` independent of the geometry's
pixel size and view count. The primal-dual algorithm is Chambolle & Pock, J. Math. Imaging Vis. 40
(2011), in the form of Sidky, Jorgensen & Pan, Phys. Med. Biol. 57 (2012) 3065.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomoconsensus.tomo.curved import fbp_operator, forward_projector
from tomoconsensus.tomo.geometry import FanBeamGeometry
from tomoconsensus.tomo.linop import Linop


@dataclass(frozen=True)
class TVConfig:
    """Parameters of the TV baseline.

    Attributes
    ----------
    lam : float
        Regularisation weight (dimensionless, see module docstring).
    n_iter : int
        Chambolle-Pock iterations.
    power_iterations : int
        Iterations used to estimate ``||A||``.
    """

    lam: float = 3e-4
    n_iter: int = 50
    power_iterations: int = 15


def gradient(x: np.ndarray) -> np.ndarray:
    """Forward differences with Neumann boundary, (H, W) -> (2, H, W)."""
    g = np.zeros((2,) + x.shape, dtype=x.dtype)
    g[0, :-1] = x[1:] - x[:-1]
    g[1, :, :-1] = x[:, 1:] - x[:, :-1]
    return g


def divergence(g: np.ndarray) -> np.ndarray:
    """Negative adjoint of :func:`gradient`: ``<grad x, g> = -<x, div g>``."""
    d = np.zeros(g.shape[1:], dtype=g.dtype)
    d[:-1] += g[0, :-1]
    d[1:] -= g[0, :-1]
    d[:, :-1] += g[1, :, :-1]
    d[:, 1:] -= g[1, :, :-1]
    return d


class Gradient(Linop):
    """The image gradient of TV as a :class:`~tomoconsensus.tomo.linop.Linop`: ``forward`` is
    :func:`gradient`, (H, W) -> (2, H, W), ``adjoint`` is ``-divergence``; NumPy, in ``dtype``."""

    native = "numpy"

    def __init__(self, shape: tuple[int, int], dtype=np.float64):
        self.ishape, self.oshape = tuple(shape), (2,) + tuple(shape)
        self.dtype, self.device = np.dtype(dtype), "cpu"

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return gradient(np.asarray(x, self.dtype))

    def _adjoint(self, g: np.ndarray) -> np.ndarray:
        return -divergence(np.asarray(g, self.dtype))


def operator_norm(proj: Linop, n_iter: int, rng: np.random.Generator | None = None) -> float:
    """Largest singular value of a projector A (image (N, N) -> sinogram) by power iteration on A^T A."""
    rng = rng or np.random.default_rng(0)
    x = rng.standard_normal(proj.ishape).astype(np.float32)
    norm = 1.0
    for _ in range(n_iter):
        x = proj.adjoint(proj.forward(x))
        norm = float(np.linalg.norm(x))
        x /= norm
    return float(np.sqrt(norm))


def tv_solve(sinogram: np.ndarray, geom: FanBeamGeometry, unit: float, config: TVConfig = TVConfig(),
             x0: np.ndarray | None = None, a_norm: float | None = None) -> np.ndarray:
    """TV-regularised reconstruction (module docstring) of a sinogram (views, channels) -> image (N, N),
    in the units of the sinogram's line integrals (1/mm for attenuation).

    ``unit`` is the image value of ``u = 1`` (CT: the attenuation of water, 1/mm); starts from ``x0``
    (default: the Hann FBP, which cuts the iterations needed several-fold); ``a_norm`` is ``||A||``
    where already known (default: :func:`operator_norm`, ``power_iterations``).
    """
    if x0 is None:
        x0 = fbp_operator(geom)(sinogram).numpy()
    with forward_projector(geom) as proj:
        if a_norm is None:
            a_norm = operator_norm(proj, config.power_iterations)
        # Work in units u = x / unit with B = A / ||A||, so ||B|| = 1 like the gradient's scale:
        # A x = y  <=>  B u = y / (||A|| unit).
        scale = 1.0 / a_norm
        y = np.asarray(sinogram, dtype=np.float32) / (a_norm * unit)
        step = 1.0 / np.sqrt(1.0 + 8.0)  # ||[A'; grad]|| <= sqrt(1 + 8)
        u = np.maximum(x0 / unit, 0).astype(np.float32)
        u_bar = u.copy()
        p = np.zeros_like(y)
        q = np.zeros((2,) + u.shape, np.float32)
        for _ in range(config.n_iter):
            p = (p + step * (proj.forward(u_bar) * scale - y)) / (1.0 + step)
            q += step * gradient(u_bar)
            q /= np.maximum(1.0, np.sqrt((q**2).sum(0)) / config.lam)
            u_new = np.maximum(u - step * (proj.adjoint(p) * scale - divergence(q)), 0.0)
            u_bar = 2 * u_new - u
            u = u_new
    return u * unit

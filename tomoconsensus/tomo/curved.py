"""Curved (equiangular) fan-beam CT: exact FBP with per-view sources, and forward projection.

A curved detector is an arc of radius ``D_sd`` centred on the source; channel ``k`` sees the ray
at fan angle ``gamma_k = (k - (n-1)/2) * dgamma`` with ``dgamma = pitch / D_sd`` (conventions in
:mod:`tomoconsensus.tomo.geometry`). Each view ``v`` has its own source, at distance ``R_v`` from the
isocentre and angle ``theta_v``: ``S_v = R_v (sin theta_v, -cos theta_v)``. A flying focal spot
(FFS) makes ``R_v`` and ``theta_v`` alternate; a plain scan has ``R_v = R`` and the geometry's
angles. :class:`FanViews` holds these per-view sources.

FBP (Kak & Slaney, *Principles of Computerized Tomographic Imaging*, eq. 3.49-3.51), for
equiangular rays:

    f(x) = sum_v w_v / L_v(x)^2 * Q_v(gamma_v(x)),
    Q_v = (R_v cos(gamma) p_v(gamma)) (*) g,     g(gamma) = 1/2 (gamma / sin gamma)^2 h(gamma),

where ``h`` is the band-limited ramp (sampled at ``dgamma``, Hann-apodised in frequency as in
:mod:`tomoconsensus.tomo.fbp`), ``L_v(x)`` the distance from the source to pixel ``x``,
``gamma_v(x)`` the fan angle of the ray through ``x``, and ``w_v`` half the angular gap to the
neighbouring views (the weights sum to ``2 pi``). Any subset of views whose angles cover the circle
is reconstructed without bias, so the split halves are complete scans.

Forward projection (:class:`CurvedProjector`): on the CPU, Joseph's method along each curved ray
exactly (:mod:`tomoconsensus.tomo.joseph`, compiled, all cores). ASTRA has no curved 2-D fan geometry,
so the ASTRA path (the default on a GPU) projects onto a flat virtual detector through the
isocentre, perpendicular to each view's central ray (ASTRA ``fanflat_vec``, one row per view, so
per-view sources are exact), sampled ``oversample`` times finer than the curved channels, and
interpolates linearly at ``u = R_v tan(gamma_k)``: the same rays, resampled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import astra
import numpy as np
import torch

from tomoconsensus.tomo.backends import (
    backprojection_backend,
    cuda_available,
    curved_projector_backend,
    default_view_chunk,
)
from tomoconsensus.tomo.fbp import angular_weights, pixel_grid, ramp_filter, weight_and_filter
from tomoconsensus.tomo.geometry import FanBeamGeometry
from tomoconsensus.tomo.linop import Linop
from tomoconsensus.tomo.projector import astra_volume_geometry


@dataclass(frozen=True)
class FanViews:
    """Per-view source positions of a 2-D fan-beam sinogram.

    Attributes
    ----------
    angles_rad : ndarray, shape (V,)
        ``theta_v``: the source is at ``R_v (sin theta_v, -cos theta_v)`` (image x, y in mm).
    source_to_origin_mm : ndarray, shape (V,)
        ``R_v``, source to isocentre, mm.
    """

    angles_rad: np.ndarray
    source_to_origin_mm: np.ndarray

    @classmethod
    def from_geometry(cls, geom: FanBeamGeometry) -> FanViews:
        """The geometry's uniformly spaced views, all at ``source_to_origin_mm``."""
        return cls(geom.angles_rad, np.full(geom.n_views, geom.source_to_origin_mm))

    def __len__(self) -> int:
        return len(self.angles_rad)

    def subset(self, views) -> FanViews:
        idx = np.asarray(views)
        return FanViews(np.asarray(self.angles_rad)[idx], np.asarray(self.source_to_origin_mm)[idx])


def _equiangular_weight(gamma: torch.Tensor) -> torch.Tensor:
    """``1/2 (gamma / sin gamma)^2`` (1/2 at ``gamma = 0``)."""
    safe = torch.where(gamma == 0, torch.ones_like(gamma), gamma)
    ratio = torch.where(gamma == 0, torch.ones_like(gamma), gamma / torch.sin(safe))
    return 0.5 * ratio**2


def equiangular_filter(n_channels: int, dgamma: float, window: str = "hann",
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """rFFT response of ``g(gamma) = 1/2 (gamma/sin gamma)^2 h(gamma)`` sampled at ``dgamma`` (rad).

    Returns
    -------
    torch.Tensor
        Shape ``(n_fft // 2 + 1,)`` float64 for zero-padding to ``n_fft = 2^ceil(log2(2 n))``;
        includes the ``dgamma`` factor of the discrete convolution (:func:`tomoconsensus.tomo.fbp.ramp_filter`
        with the equiangular weight).
    """
    return ramp_filter(n_channels, dgamma, window, device, weight=_equiangular_weight)


class CurvedFBP(Linop):
    """FBP operator for a curved-detector geometry, any subset of views, per-view sources.

    A torch :class:`~tomoconsensus.tomo.linop.Linop` without adjoint, as :class:`~tomoconsensus.tomo.fbp.FBP`.

    Parameters
    ----------
    geom : FanBeamGeometry
        ``detector_shape = "curved"``; gives the channels, the image grid and the default sources.
    views : sequence of int, optional
        Indices (into ``sources``) of the views the sinograms contain; all by default.
    window : {"hann", "ram-lak"}
    device : str or torch.device
    sources : FanViews, optional
        Per-view sources of the full scan (default: the geometry's uniform views).
    view_chunk : int, optional
        Views backprojected at once by the torch loop (8 on the CPU, 64 on a GPU).
    backend : {"numba", "torch"}, optional
        Backprojection: compiled (:func:`tomoconsensus.tomo.backproject.backproject_curved_cpu`, the
        default on the CPU) or the torch loop (GPUs); the same float32 arithmetic.
    """

    def __init__(self, geom: FanBeamGeometry, views: Sequence[int] | np.ndarray | None = None,
                 window: str = "hann", device: torch.device | str = "cpu", sources: FanViews | None = None,
                 view_chunk: int | None = None, backend: str | None = None):
        if not geom.is_curved:
            raise ValueError(f"CurvedFBP needs a curved geometry, '{geom.name}' is {geom.detector_shape}")
        self.geom = geom
        self.device = torch.device(device)
        self.backend = backprojection_backend(backend, self.device)
        self.view_chunk = view_chunk or default_view_chunk(self.device, 8)
        sources = FanViews.from_geometry(geom) if sources is None else sources
        self.views = np.arange(len(sources)) if views is None else np.asarray(views)
        self.ishape, self.oshape = (len(self.views), geom.n_detectors), (geom.image_size, geom.image_size)
        sub = sources.subset(self.views)
        self.dgamma = geom.detector_pitch_mm / geom.source_to_detector_mm
        f64 = {"dtype": torch.float64, "device": self.device}
        gamma = torch.as_tensor(geom.channel_fan_angles_rad(), **f64)
        radius = torch.as_tensor(sub.source_to_origin_mm, **f64)
        self.preweight = (radius[:, None] * torch.cos(gamma)[None, :]).float()
        self.response = equiangular_filter(geom.n_detectors, self.dgamma, window, self.device).float()
        weights = angular_weights(sub.angles_rad, 2 * math.pi)
        angles = np.asarray(sub.angles_rad, dtype=np.float64)
        self.cos = torch.as_tensor(np.cos(angles), **f64).float()
        self.sin = torch.as_tensor(np.sin(angles), **f64).float()
        self.radius = radius.float()
        self.weights = torch.as_tensor(weights, **f64).float()
        self.x, self.y = pixel_grid(geom, self.device)

    def filter(self, sinogram: torch.Tensor) -> torch.Tensor:
        """Cosine pre-weight and equiangular ramp filter along the channels, (..., V, K)."""
        return weight_and_filter(sinogram, self.preweight, self.response)

    def backproject(self, filtered: torch.Tensor) -> torch.Tensor:
        """``sum_v w_v / L^2 Q_v(gamma)``: filtered (B, V, K) -> images (B, N*N)."""
        if self.backend == "numba":
            from tomoconsensus.tomo.backproject import backproject_curved_cpu

            arrays = (t.contiguous().numpy() for t in (self.cos, self.sin, self.radius, self.weights, self.x, self.y))
            return torch.from_numpy(backproject_curved_cpu(filtered.contiguous().numpy(), *arrays, self.dgamma,
                                                           torch.get_num_threads()))
        return self._backproject_torch(filtered)

    def _backproject_torch(self, filtered: torch.Tensor) -> torch.Tensor:
        n_det = self.geom.n_detectors
        batch, n_views = filtered.shape[:2]
        padded = torch.nn.functional.pad(filtered, (1, 1)).reshape(batch, -1)
        row_len, centre = n_det + 2, (n_det - 1) / 2 + 1
        out = torch.zeros(batch, self.x.numel(), dtype=filtered.dtype, device=filtered.device)
        for start in range(0, n_views, self.view_chunk):
            sl = slice(start, start + self.view_chunk)
            c, s, r, w = self.cos[sl, None], self.sin[sl, None], self.radius[sl, None], self.weights[sl, None]
            along = torch.addcmul(self.y * c, self.x, s, value=-1).add_(r)  # source -> pixel, along e
            across = torch.addcmul(self.x * c, self.y, s)  # along u_hat
            weight = (along * along).addcmul_(across, across).reciprocal_().mul_(w)  # w / L^2
            pos = torch.atan2(across, along).div_(self.dgamma).add_(centre).clamp_(0, n_det + 1 - 1e-3)
            lo = pos.long()
            frac = pos.sub_(lo)
            lo += torch.arange(start, start + lo.shape[0], device=lo.device)[:, None] * row_len
            for b in range(batch):
                left = torch.take(padded[b], lo)
                value = torch.take(padded[b], lo + 1).sub_(left).mul_(frac).add_(left).mul_(weight)
                out[b] += value.sum(dim=0)
        return out

    def __call__(self, sinogram) -> torch.Tensor:
        """Attenuation images (1/mm), (N, N) or (B, N, N), from sinograms (V, K) or (B, V, K)."""
        sino = torch.as_tensor(sinogram, dtype=torch.float32, device=self.device)
        single = sino.ndim == 2
        if single:
            sino = sino[None]
        expected = (len(self.views), self.geom.n_detectors)
        if tuple(sino.shape[-2:]) != expected:
            raise ValueError(f"sinogram: expected (..., {expected[0]}, {expected[1]}) for geometry "
                             f"'{self.geom.name}' and this view subset, got {tuple(sino.shape)}")
        n = self.geom.image_size
        image = self.backproject(self.filter(sino)).reshape(-1, n, n)
        return image[0] if single else image

    native, dtype, has_adjoint = "torch", np.dtype(np.float32), False
    adjoint_instead = "CurvedProjector's adjoint: FBP is a reconstruction"

    def _forward(self, sinogram) -> torch.Tensor:
        return self(sinogram)


class CurvedProjector(Linop):
    """Line integrals on a curved detector (per-view sources): Joseph's method or ASTRA + resampling.

    Parameters
    ----------
    geom : FanBeamGeometry
        Curved geometry (channels, image grid).
    views : sequence of int, optional
        Subset of views of ``sources``.
    sources : FanViews, optional
        Per-view sources (default: the geometry's uniform views).
    oversample : int
        ASTRA path: flat virtual channels per curved channel at the centre of the fan.
    use_cuda : bool, optional
        ASTRA path: GPU projector (default: when available).
    backend : {"joseph", "astra"}, optional
        ``joseph`` (:mod:`tomoconsensus.tomo.joseph`, the CPU default: each curved ray exactly, about 7x
        faster than ASTRA's CPU projector on the 4x oversampled flat detector) or ``astra`` (the
        default when ASTRA has CUDA).

    A NumPy :class:`~tomoconsensus.tomo.linop.Linop`: image ``(N, N)`` -> sinogram ``(V, K)``, float32, and
    its exact transpose.
    """

    native, dtype = "numpy", np.dtype(np.float32)

    def __init__(self, geom: FanBeamGeometry, views=None, sources: FanViews | None = None, oversample: int = 4,
                 use_cuda: bool | None = None, backend: str | None = None):
        if not geom.is_curved:
            raise ValueError(f"CurvedProjector needs a curved geometry, '{geom.name}' is {geom.detector_shape}")
        self.geom = geom
        sources = FanViews.from_geometry(geom) if sources is None else sources
        self.sources = sources if views is None else sources.subset(views)
        self.use_cuda = cuda_available() if use_cuda is None else use_cuda
        self.backend = curved_projector_backend(backend, self.use_cuda)
        self.device = "cuda" if self.backend == "astra" and self.use_cuda else "cpu"
        self.ishape, self.oshape = (geom.image_size, geom.image_size), (len(self.sources), geom.n_detectors)
        self.projector_id = None
        if self.backend == "astra":
            self._astra_setup(oversample)

    def _astra_setup(self, oversample: int) -> None:
        geom = self.geom
        gamma = geom.channel_fan_angles_rad()
        radius = np.asarray(self.sources.source_to_origin_mm, dtype=np.float64)
        theta = np.asarray(self.sources.angles_rad, dtype=np.float64)
        self.du = float(radius.min()) * (geom.detector_pitch_mm / geom.source_to_detector_mm) / oversample
        half = float((radius * np.tan(np.abs(gamma).max())).max()) + 2 * self.du
        self.n_flat = 2 * math.ceil(half / self.du) + 1
        src = np.stack([radius * np.sin(theta), -radius * np.cos(theta)], axis=1)
        u_hat = np.stack([np.cos(theta), np.sin(theta)], axis=1)
        vectors = np.concatenate([src, np.zeros_like(src), u_hat * self.du], axis=1)  # detector centre at origin
        self.proj_geom = astra.create_proj_geom("fanflat_vec", self.n_flat, vectors)
        self.vol_geom = astra_volume_geometry(geom)
        self.projector_id = astra.create_projector("cuda" if self.use_cuda else "line_fanflat",
                                                   self.proj_geom, self.vol_geom)
        # flat coordinate of each curved channel's ray, in flat channel units: (V, K)
        self.position = radius[:, None] * np.tan(gamma)[None, :] / self.du + (self.n_flat - 1) / 2

    def _rays(self) -> tuple:
        return (self.sources.angles_rad, self.sources.source_to_origin_mm, self.geom.channel_fan_angles_rad(),
                self.geom.pixel_size_mm)

    @property
    def sinogram_shape(self) -> tuple[int, int]:
        return (len(self.sources), self.geom.n_detectors)

    def _forward(self, image: np.ndarray) -> np.ndarray:
        """Line integrals of ``image`` (N, N) in 1/mm -> curved sinogram (V, K), float32."""
        if self.backend == "joseph":
            from tomoconsensus.tomo.joseph import joseph_forward

            return joseph_forward(image, *self._rays())
        sid, flat = astra.create_sino(np.ascontiguousarray(image, dtype=np.float32), self.projector_id)
        astra.data2d.delete(sid)
        lo = np.floor(self.position).astype(np.int64)
        frac = self.position - lo
        rows = np.arange(flat.shape[0])[:, None]
        left, right = flat[rows, lo], flat[rows, lo + 1]
        return (left + (right - left) * frac).astype(np.float32)

    def _adjoint(self, sinogram: np.ndarray) -> np.ndarray:
        """Exact transpose of :meth:`forward`: curved sinogram (V, K) -> image (N, N), float32."""
        if self.backend == "joseph":
            from tomoconsensus.tomo.joseph import joseph_adjoint

            return joseph_adjoint(sinogram, *self._rays(), self.geom.image_size)
        sino = np.asarray(sinogram, dtype=np.float64)
        lo = np.floor(self.position).astype(np.int64)
        frac = self.position - lo
        base = np.arange(sino.shape[0])[:, None] * self.n_flat
        flat = np.bincount((base + lo).ravel(), (sino * (1 - frac)).ravel(), sino.shape[0] * self.n_flat)
        flat += np.bincount((base + lo + 1).ravel(), (sino * frac).ravel(), sino.shape[0] * self.n_flat)
        flat = np.ascontiguousarray(flat.reshape(sino.shape[0], self.n_flat), dtype=np.float32)
        bid, image = astra.create_backprojection(flat, self.projector_id)
        astra.data2d.delete(bid)
        return image

    def close(self) -> None:
        if self.projector_id is not None:
            astra.projector.delete(self.projector_id)
            self.projector_id = None

    def __enter__(self) -> CurvedProjector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fbp_operator(geom: FanBeamGeometry, views=None, window: str = "hann", device: torch.device | str = "cpu",
                 sources: FanViews | None = None):
    """The FBP operator for a geometry: :class:`CurvedFBP` for curved detectors, else the flat ``FBP``.

    This is the one place that chooses between the two; per-view ``sources`` need a curved geometry.
    """
    from tomoconsensus.tomo.fbp import FBP

    if isinstance(geom, FanBeamGeometry) and geom.is_curved:
        return CurvedFBP(geom, views, window, device, sources)
    if sources is not None:
        raise ValueError("per-view sources are supported for curved geometries only")
    return FBP(geom, views, window, device)


def forward_projector(geom: FanBeamGeometry, views=None, kind: str = "line", threads: int = 1):
    """Forward projector for simulation: :class:`CurvedProjector` or ASTRA's flat ``AstraProjector``
    (its views split over ``threads`` CPU threads)."""
    from tomoconsensus.tomo.projector import AstraProjector

    if isinstance(geom, FanBeamGeometry) and geom.is_curved:
        return CurvedProjector(geom, views)
    return AstraProjector(geom, views, kind=kind, threads=threads)

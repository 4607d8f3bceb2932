"""Filtered backprojection for flat-detector fan-beam and parallel-beam data, in PyTorch.

ASTRA has no fan-beam FBP on the CPU ("FBP currently only supports parallel projection
geometries"), and the unweighted adjoint is not an inverse. This module implements the exact
fan-beam FBP for equally spaced collinear detectors (Kak & Slaney, *Principles of Computerized
Tomographic Imaging*, ch. 3.4.2):

1. rescale the detector coordinate to a virtual detector through the isocentre, ``u = s D / D_sd``;
2. pre-weight each ray by ``D / sqrt(D^2 + u^2)`` (cosine of the ray's fan angle);
3. filter along ``u`` with the band-limited ramp (spatial-domain kernel, so no DC bias), apodised
   by a Hann window ``(1 + cos(2 pi f))/2`` that reaches zero at the Nyquist frequency (the same
   window as ASTRA's ``"hann"``);
4. backproject with the distance weight ``(D / L)^2``, where ``L`` is the distance from the source
   to the pixel along the central ray, and each view's angular weight.

The angular weight of a view is half the angle between its two neighbours on the circle, so an
FBP from a uniformly spaced subset (odd or even views) is itself a complete, unbiased
reconstruction, and ``(fbp(odd) + fbp(even)) / 2 == fbp(all)`` exactly (linearity).

Weighting and filtering are vectorised in torch (GPU when given a CUDA device). The backprojection
runs in a compiled Numba kernel on the CPU (:mod:`tomoconsensus.tomo.backproject`) and as a vectorised
torch loop on a GPU; the two do the same float32 arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from tomoconsensus.tomo.backends import backprojection_backend, default_view_chunk
from tomoconsensus.tomo.backproject import backproject_cpu
from tomoconsensus.tomo.geometry import FanBeamGeometry, Geometry
from tomoconsensus.tomo.linop import Linop

WINDOWS = ("ram-lak", "hann")


def ramp_filter(n_channels: int, spacing: float, window: str = "hann", device: torch.device | str = "cpu",
                weight: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Frequency response of the apodised ramp filter for an rFFT of length ``2^ceil(log2(2n))``.

    The one ramp-filter builder of the package: the flat (and parallel) FBP uses the band-limited ramp
    ``h`` itself, the curved FBP (:func:`tomoconsensus.tomo.curved.equiangular_filter`) the kernel
    ``weight(t) h(t)`` with ``weight(gamma) = 1/2 (gamma / sin gamma)^2``.

    Parameters
    ----------
    n_channels : int
        Detector channels (the sinogram is zero-padded to at least twice this).
    spacing : float
        Channel spacing: mm (on the virtual detector for fan beam), or rad for equiangular channels.
    window : {"ram-lak", "hann"}
        Apodisation window.
    weight : callable, optional
        Multiplies the spatial kernel, given the signed offsets ``t = n * spacing`` (float64 tensor).

    Returns
    -------
    torch.Tensor
        Shape ``(n_fft // 2 + 1,)``, float64; includes the ``spacing`` factor of the discrete
        convolution, so ``irfft(rfft(p) * H)`` approximates the continuous ramp filtering.
    """
    if window not in WINDOWS:
        raise ValueError(f"window: expected one of {WINDOWS}, got {window!r}")
    n_fft = 1 << math.ceil(math.log2(2 * n_channels))
    n = torch.arange(n_fft, dtype=torch.float64)
    n = torch.where(n > n_fft // 2, n - n_fft, n)  # signed circular offsets
    kernel = torch.where(n % 2 == 1, -1.0 / (math.pi * n) ** 2, torch.zeros_like(n))
    kernel[0] = 0.25
    kernel = kernel / spacing**2
    if weight is not None:
        kernel = weight(n * spacing) * kernel
    response = torch.fft.rfft(kernel).real * spacing
    if window == "hann":
        freq = torch.arange(n_fft // 2 + 1, dtype=torch.float64) / n_fft  # cycles per sample
        response = response * 0.5 * (1 + torch.cos(2 * math.pi * freq))
    return response.to(device)


def angular_weights(angles_rad: np.ndarray, period_rad: float) -> np.ndarray:
    """Angular integration weight of each view: half the gap to its two neighbours on the circle.

    Parameters
    ----------
    angles_rad : array, shape (V,)
        View angles (any order).
    period_rad : float
        ``2 pi`` for fan beam (full scan), ``pi`` or ``2 pi`` for parallel beam.
    """
    angles = np.mod(np.asarray(angles_rad, dtype=np.float64), period_rad)
    order = np.argsort(angles)
    sorted_angles = angles[order]
    gaps = np.diff(np.concatenate([sorted_angles, sorted_angles[:1] + period_rad]))
    weights_sorted = (gaps + np.roll(gaps, 1)) / 2
    weights = np.empty_like(weights_sorted)
    weights[order] = weights_sorted
    return weights


def pixel_grid(geom: Geometry, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel centres (x, y) in mm, flattened to (N*N,) float32 tensors on ``device``."""
    x, y = geom.pixel_centers_mm()
    return (torch.as_tensor(x.ravel(), dtype=torch.float32, device=device),
            torch.as_tensor(y.ravel(), dtype=torch.float32, device=device))


def weight_and_filter(sinogram: torch.Tensor, preweight: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """``irfft(rfft(sinogram * preweight) * response)`` along the channels, cropped back: (..., V, K)."""
    n = sinogram.shape[-1]
    n_fft = 2 * (response.shape[0] - 1)
    spectrum = torch.fft.rfft(sinogram * preweight, n=n_fft, dim=-1)
    return torch.fft.irfft(spectrum * response, n=n_fft, dim=-1)[..., :n]


class FBP(Linop):
    """Reusable FBP operator for one geometry and one subset of views.

    A :class:`~tomoconsensus.tomo.linop.Linop` (torch): ``forward`` maps a sinogram ``(views, channels)``
    (or a batch) to an image ``(N, N)``, float32; ``__call__`` does the same and always returns a
    tensor. The adjoint is not implemented (use the projector's, :mod:`tomoconsensus.tomo.projector`).

    Parameters
    ----------
    geom : Geometry
        Fan-beam (flat detector, 360 deg) or parallel-beam geometry.
    views : sequence of int, optional
        Indices of the views that the sinograms passed to :meth:`__call__` contain.
    window : {"hann", "ram-lak"}
        Ramp apodisation.
    device : str or torch.device
        ``"cuda"`` to run on the GPU.
    view_chunk : int, optional
        Views backprojected at once by the torch loop (memory ~ ``view_chunk * N^2 * 4`` bytes per
        temporary); 1 on the CPU (cache-friendly) and 64 on a GPU by default.
    backend : {"numba", "torch"}, optional
        Backprojection: the compiled CPU kernel of :mod:`tomoconsensus.tomo.backproject` (default on
        the CPU) or the vectorised torch loop (default, and the only choice, on a GPU). Both do the
        same float32 arithmetic and agree to round-off.
    """

    def __init__(self, geom: Geometry, views: Sequence[int] | np.ndarray | None = None,
                 window: str = "hann", device: torch.device | str = "cpu", view_chunk: int | None = None,
                 backend: str | None = None):
        if getattr(geom, "detector_shape", "flat") != "flat":
            raise ValueError("FBP is for flat detectors; use tomoconsensus.tomo.curved.fbp_operator")
        self.geom = geom
        self.device = torch.device(device)
        # One view at a time keeps the CPU temporaries in cache; a GPU wants wide launches.
        self.view_chunk = view_chunk or default_view_chunk(self.device, 1)
        self.backend = backprojection_backend(backend, self.device)
        self.views = np.arange(geom.n_views) if views is None else np.asarray(views)
        self.ishape, self.oshape = (len(self.views), geom.n_detectors), (geom.image_size, geom.image_size)
        angles = geom.angles_rad[self.views]
        self.is_fan = isinstance(geom, FanBeamGeometry)
        period = 2 * math.pi if self.is_fan else math.radians(geom.angular_range_deg)
        # pi/period: a 360-degree scan measures every line twice, so each half counts 1/2.
        weights = angular_weights(angles, period) * (math.pi / period)
        self.weights_f64 = weights  # (views,) rad, before rounding to float32
        if self.is_fan:
            d = geom.source_to_origin_mm
            self.du = geom.detector_pitch_mm * d / geom.source_to_detector_mm
        else:
            self.du = geom.detector_pitch_mm
        f64 = dict(dtype=torch.float64, device=self.device)
        u = (torch.arange(geom.n_detectors, **f64) - (geom.n_detectors - 1) / 2) * self.du
        self.preweight = (d / torch.sqrt(d**2 + u**2) if self.is_fan else torch.ones_like(u)).float()
        self.response = ramp_filter(geom.n_detectors, self.du, window, self.device).float()
        self.cos = torch.as_tensor(np.cos(angles), **f64).float()
        self.sin = torch.as_tensor(np.sin(angles), **f64).float()
        self.weights = torch.as_tensor(weights, **f64).float()
        self.x, self.y = pixel_grid(geom, self.device)

    def filter(self, sinogram: torch.Tensor) -> torch.Tensor:
        """Pre-weight and ramp-filter a sinogram (..., views, channels) along the channel axis."""
        return weight_and_filter(sinogram, self.preweight, self.response)

    def backproject(self, filtered: torch.Tensor) -> torch.Tensor:
        """Weighted backprojection of filtered sinograms (B, views, channels) -> (B, N*N)."""
        if self.backend == "torch":
            return self._backproject_torch(filtered)
        fan_d = self.geom.source_to_origin_mm if self.is_fan else None
        out = backproject_cpu(filtered.contiguous().numpy(), *(t.numpy() for t in (self.cos, self.sin, self.weights,
                              self.x, self.y)), self.du, fan_d, torch.get_num_threads())
        return torch.from_numpy(out)

    def _backproject_torch(self, filtered: torch.Tensor) -> torch.Tensor:
        n_det = self.geom.n_detectors
        batch, n_views = filtered.shape[:2]
        # One zero channel on each side so rays that miss the detector contribute nothing.
        padded = torch.nn.functional.pad(filtered, (1, 1)).reshape(batch, -1)
        row_len = n_det + 2
        centre = (n_det - 1) / 2 + 1
        out = torch.zeros(batch, self.x.numel(), dtype=filtered.dtype, device=filtered.device)
        # In-place arithmetic on (chunk, pixels) temporaries: the loop is memory-bound.
        for start in range(0, n_views, self.view_chunk):
            sl = slice(start, start + self.view_chunk)
            c, s, w = self.cos[sl, None], self.sin[sl, None], self.weights[sl, None]
            if self.is_fan:
                d = self.geom.source_to_origin_mm
                inv = torch.addcmul(self.y * c, self.x, s, value=-1).add_(d)  # source-pixel distance
                inv.reciprocal_().mul_(d)  # D / L: magnification of this pixel onto the detector
                pos = torch.addcmul(self.x * (c / self.du), self.y, s / self.du).mul_(inv)
                weight = inv.mul_(inv).mul_(w)
            else:
                pos = torch.addcmul(self.x * (c / self.du), self.y, s / self.du)
                weight = w.expand_as(pos)
            pos.add_(centre).clamp_(0, n_det + 1 - 1e-3)
            lo = pos.long()
            frac = pos.sub_(lo)
            lo += torch.arange(start, start + lo.shape[0], device=lo.device)[:, None] * row_len
            for b in range(batch):
                left = torch.take(padded[b], lo)
                value = torch.take(padded[b], lo + 1).sub_(left).mul_(frac).add_(left).mul_(weight)
                out[b] += value.sum(dim=0)
        return out

    def __call__(self, sinogram) -> torch.Tensor:
        """Reconstruct attenuation images (1/mm) from sinograms of line integrals.

        Parameters
        ----------
        sinogram : array or tensor, shape (views, channels) or (B, views, channels)
            Only the views given at construction.

        Returns
        -------
        torch.Tensor
            Shape (N, N) or (B, N, N), float32, on this operator's device.
        """
        sino = torch.as_tensor(sinogram, dtype=torch.float32, device=self.device)
        single = sino.ndim == 2
        if single:
            sino = sino[None]
        expected = (len(self.views), self.geom.n_detectors)
        if tuple(sino.shape[-2:]) != expected:
            raise ValueError(f"sinogram: expected (..., {expected[0]}, {expected[1]}) for geometry "
                             f"'{self.geom.name}' and this view subset, got {tuple(sino.shape)}")
        image = self.backproject(self.filter(sino)).reshape(-1, self.geom.image_size, self.geom.image_size)
        return image[0] if single else image


    native, dtype, has_adjoint = "torch", np.dtype(np.float32), False
    adjoint_instead = "the projector's adjoint (AstraProjector, CurvedProjector): FBP is a reconstruction"

    def _forward(self, sinogram) -> torch.Tensor:
        return self(sinogram)


def fbp(sinogram, geom: Geometry, views=None, window: str = "hann", device="cpu") -> np.ndarray:
    """One-shot FBP returning a NumPy image (N, N) in 1/mm; see :class:`FBP`."""
    return FBP(geom, views, window, device)(sinogram).cpu().numpy()

"""Forward projection and its exact adjoint with ASTRA (CUDA when available, CPU otherwise).

All lengths are in mm: the ASTRA volume spans ``+-image_extent_mm/2`` and the detector pitch and
distances are given in mm, so a sinogram of an attenuation image in 1/mm is a dimensionless
line integral.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import astra
import numpy as np

from tomoconsensus.tomo.backends import astra_projector_type, cuda_available
from tomoconsensus.tomo.geometry import FanBeamGeometry, Geometry
from tomoconsensus.tomo.linop import Linop


def astra_volume_geometry(geom: Geometry) -> dict:
    """ASTRA volume geometry of the reconstruction grid, in mm."""
    half = geom.image_extent_mm / 2
    return astra.create_vol_geom(geom.image_size, geom.image_size, -half, half, -half, half)


def astra_projection_geometry(geom: Geometry, views: Sequence[int] | np.ndarray | None = None) -> dict:
    """ASTRA projection geometry (``fanflat`` or ``parallel``) for all or a subset of views."""
    angles = geom.angles_rad if views is None else geom.angles_rad[np.asarray(views)]
    if isinstance(geom, FanBeamGeometry):
        return astra.create_proj_geom("fanflat", geom.detector_pitch_mm, geom.n_detectors, angles,
                                      geom.source_to_origin_mm, geom.origin_to_detector_mm)
    return astra.create_proj_geom("parallel", geom.detector_pitch_mm, geom.n_detectors, angles)


class AstraProjector(Linop):
    """Ray-driven forward projector A and its matrix transpose A^T (unfiltered backprojection).

    A NumPy :class:`~tomoconsensus.tomo.linop.Linop`: image ``(N, N)`` in 1/mm -> sinogram
    ``(views, channels)``, float32; on the GPU (``device = "cuda"``) when ASTRA has CUDA.

    Parameters
    ----------
    geom : Geometry
        Scanner and image grid.
    views : array of int, optional
        Subset of view indices (e.g. odd views); all views by default.
    use_cuda : bool, optional
        Force the GPU (True) or CPU (False) projector; by default CUDA when available.
    kind : str
        CPU projector model: ``"line"`` (Siddon-like, fast) or ``"strip"`` (area-integrating).
    threads : int
        CPU forward projection in this many threads, each over a contiguous block of views (ASTRA
        releases the GIL and projects each view independently, so the sinogram is bit-identical to
        one thread's).

    Notes
    -----
    Use as a context manager, or call :meth:`close`, to free ASTRA's objects.
    """

    native, dtype = "numpy", np.dtype(np.float32)

    def __init__(self, geom: Geometry, views=None, use_cuda: bool | None = None, kind: str = "line",
                 threads: int = 1):
        self.geom = geom
        self.use_cuda = cuda_available() if use_cuda is None else use_cuda
        self.vol_geom = astra_volume_geometry(geom)
        self.proj_geom = astra_projection_geometry(geom, views)
        n_views = len(self.proj_geom["ProjectionAngles"])
        self.sinogram_shape = (n_views, geom.n_detectors)
        self.ishape, self.oshape = (geom.image_size, geom.image_size), self.sinogram_shape
        self.device = "cuda" if self.use_cuda else "cpu"
        proj_type = astra_projector_type(isinstance(geom, FanBeamGeometry), kind, self.use_cuda)
        self.projector_id = astra.create_projector(proj_type, self.proj_geom, self.vol_geom)
        all_views = np.arange(geom.n_views) if views is None else np.asarray(views)
        blocks = np.array_split(all_views, max(1, threads)) if threads > 1 and not self.use_cuda else []
        self._blocks = [astra.create_projector(proj_type, astra_projection_geometry(geom, b), self.vol_geom)
                        for b in blocks if len(b)]

    def _forward(self, image: np.ndarray) -> np.ndarray:
        """Line integrals of ``image`` (N, N) [1/mm] -> sinogram (views, channels), float32."""
        image = np.ascontiguousarray(image, dtype=np.float32)
        if len(self._blocks) > 1:
            with ThreadPoolExecutor(len(self._blocks)) as pool:
                return np.concatenate(list(pool.map(lambda pid: _create_sino(image, pid), self._blocks)))
        return _create_sino(image, self.projector_id)

    def _adjoint(self, sinogram: np.ndarray) -> np.ndarray:
        """Unfiltered backprojection A^T y: sinogram (views, channels) -> image (N, N), float32."""
        sinogram = np.ascontiguousarray(sinogram, dtype=np.float32)
        bid, image = astra.create_backprojection(sinogram, self.projector_id)
        astra.data2d.delete(bid)
        return image

    def close(self) -> None:
        if self.projector_id is not None:
            astra.projector.delete([self.projector_id] + self._blocks)
            self.projector_id, self._blocks = None, []

    def __enter__(self) -> AstraProjector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _create_sino(image: np.ndarray, projector_id: int) -> np.ndarray:
    sid, sino = astra.create_sino(image, projector_id)
    astra.data2d.delete(sid)
    return sino


def forward_project(image: np.ndarray, geom: Geometry, **kwargs) -> np.ndarray:
    """One-shot forward projection of an (N, N) image in 1/mm; see :class:`AstraProjector`."""
    with AstraProjector(geom, **kwargs) as proj:
        return proj.forward(image)

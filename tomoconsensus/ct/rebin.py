"""Single-slice rebinning of helical DICOM-CT-PD scans to 2-D curved fan-beam sinograms.

Single-slice rebinning (SSRB; Noo, Defrise & Clackdoyle, Phys. Med. Biol. 44:561, 1999) turns
the helical cone-beam data near a table position ``z`` into the fan-beam sinogram of the slice
``z``. For the 2-D view with angular index ``k`` (``0 <= k < N``, N views per rotation) and
fan angle ``gamma``:

1. the helical views of the same angle are ``m = k, k + N, k + 2N, ...``; the nearest one with its
   source below ``z`` and the nearest one above (one turn apart) are used;
2. in each, the ray is the one that meets the plane ``z`` at the point of its path closest to the
   rotation axis, at in-plane distance ``R cos(gamma)`` from the source; on the cylindrical
   detector (radius ``d0`` about the focal centre) it lands at height
   ``v* = dz_s + (z - z_s) D / (R cos gamma)``, with ``D = d0`` without flying focal spot
   (the issue's ``v* = dz d0 / (rho cos gamma)``), ``z_s`` the source height and ``dz_s`` its FFS shift;
3. each sample is corrected to an in-plane path length, ``p cos(kappa)`` with
   ``tan(kappa) = (v_row - dz_s) / D`` (exact for objects constant along z), then interpolated
   linearly between the two rows around ``v*`` and between the channels (needed with an in-plane
   flying focal spot), and the two turns are averaged with weights linear in ``|z - z_s|``
   (the closer source counts more; a ray seen by one turn only takes that one).

Flying focal spot: each view's source has its own radius ``R + d_rho`` and angle ``phi + d_phi``
(:class:`~tomoconsensus.tomo.curved.FanViews`); its fan of output rays is uniform in the angle at
the *source* (what the curved FBP expects) and each ray is traced to where it hits the detector arc
about the focal centre. With ``model_ffs=False`` the shifts are ignored (for comparison).

The 2-D view ``k`` reads only helical views ``m = k (mod N)``, so splitting the helical views by
angular index (:func:`split_views`) and rebinning each half separately equals selecting the
rows of the full rebinned sinogram: the halves never share a measurement.

Everything is vectorised over views and channels (a few gathers of ``N x K`` arrays per slice).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from tomoconsensus.ct.dicom_pd import (
    FFS_PERIOD,
    HelicalScan,
    channel_of_fan_angle,
    image_view_angle,
    row_of_height,
)
from tomoconsensus.ct.noise import dose_reduction_variance
from tomoconsensus.ct.protocol import geometry_from_dict
from tomoconsensus.errors import InputError
from tomoconsensus.tomo.curved import FanViews
from tomoconsensus.tomo.geometry import FanBeamGeometry

SPLITS = ("auto", "odd-even", "ffs-blocks", "random-pairs")


def split_views(n_views: int, strategy: str, ffs_mode: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Partition the angular indices ``0..n_views-1`` into the views of x1 and x2.

    ``odd-even``: x1 odd, x2 even views. ``ffs-blocks``: blocks of one flying-focal-spot cycle
    ``P`` (1, 2 or 4 views), alternately to x2 and x1 (FFSXY: {4k, 4k+1} -> x2, {4k+2, 4k+3} -> x1).
    ``random-pairs``: in each pair {2k, 2k+1} one view, chosen at random, goes to x1.
    ``auto``: ``ffs-blocks`` for FFS data, else ``odd-even``.

    Why: with an in-plane flying focal spot, consecutive views come from different focal
    positions that sample interleaved rays; an odd/even split would give each half only one
    focal position, so the halves would sample different rays (different resolution and
    aliasing, E[x1] != E[x2]). FFS-cycle blocks keep every focal position in both halves.

    Returns
    -------
    (x1 views, x2 views, description)
    """
    if strategy not in SPLITS:
        raise InputError("--split", "split", f"one of {SPLITS}", strategy)
    period = FFS_PERIOD.get(ffs_mode, 1)
    if strategy == "auto":
        strategy = "ffs-blocks" if period > 1 else "odd-even"
    k = np.arange(n_views)
    if strategy == "odd-even":
        first = k % 2 == 1
        text = "x1 = odd views (1,3,5,...), x2 = even views (0,2,4,...)"
    elif strategy == "ffs-blocks":
        if n_views % (2 * period):
            raise InputError("--split", "ffs-blocks", f"views per rotation divisible by {2 * period}", n_views)
        first = (k // period) % 2 == 1
        text = (f"ffs-blocks of {period} view(s) ({ffs_mode}): x1 = views with (k // {period}) odd, "
                f"x2 = (k // {period}) even; every focal position is in both halves")
    else:
        rng = np.random.default_rng(seed)
        first = np.zeros(n_views, bool)
        first[2 * np.arange(n_views // 2) + rng.integers(0, 2, n_views // 2)] = True
        text = f"random-pairs (seed {seed}): one view of each pair (2k, 2k+1) at random to x1, the other to x2"
    return np.flatnonzero(first), np.flatnonzero(~first), text


@dataclass(frozen=True)
class RebinnedGeometry:
    """The 2-D geometry of the rebinned sinograms: a curved fan beam plus per-view sources."""

    geom: FanBeamGeometry
    sources: FanViews


class Rebinner:
    """Single-slice rebinning of one helical scan at any table position (see module docstring).

    Parameters
    ----------
    scan : HelicalScan
    image_size, pixel_size_mm : reconstruction grid of the returned geometry
    model_ffs : bool
        Use the flying-focal-spot shifts (True) or ignore them (for comparison only).
    dose_fraction : float
        1: the data as measured; f < 1: noise added to every raw reading so that the scan looks
        like one at ``f`` of the dose (:func:`tomoconsensus.ct.noise.dose_reduction_variance`).
    electronic_noise_std : float
        Electronic noise in photons, for the dose reduction.
    seed : int
        Seed of the dose-reduction noise; each raw reading gets the same noise in every slice.
    """

    def __init__(self, scan: HelicalScan, image_size: int, pixel_size_mm: float, model_ffs: bool = True,
                 dose_fraction: float = 1.0, electronic_noise_std: float = 0.0, seed: int = 0):
        if not (0 < dose_fraction <= 1):
            raise InputError("--dose-fraction", "dose_fraction", "a number in (0, 1]", dose_fraction)
        if dose_fraction < 1 and scan.photons is None:
            raise InputError(scan.source, "PhotonStatistics (7033,1065)",
                             "incident photon counts in the files for --dose-fraction < 1", "missing")
        self.scan, self.model_ffs = scan, model_ffs
        self.dose_fraction, self.electronic_noise_std, self.seed = dose_fraction, electronic_noise_std, seed
        n = scan.views_per_rotation
        self._chains(n)
        self._in_plane(n)
        self.geometry = self._geometry(image_size, pixel_size_mm)

    def _chains(self, n: int) -> None:
        """View indices (turns, n) of each angular index, and their source heights (NaN: none)."""
        scan = self.scan
        turns = math.ceil(scan.n_views / n)
        index = np.arange(turns * n).reshape(turns, n)
        self.chain = np.where(index < scan.n_views, index, -1)
        valid = self.chain >= 0
        dz = scan.shift_z_mm if self.model_ffs else np.zeros(scan.n_views)
        self.z_focal = np.where(valid, scan.z_mm[np.maximum(self.chain, 0)], np.nan)
        self.z_source = np.where(valid, (scan.z_mm + dz)[np.maximum(self.chain, 0)], np.nan)

    def _in_plane(self, n: int) -> None:
        """Per angular index: source, output fan angles, hit channel, in-plane source-detector distance."""
        scan = self.scan
        pick = (lambda a: a[:n]) if self.model_ffs else (lambda a: np.zeros(n))
        d_phi, d_rho, d_z = pick(scan.shift_phi_rad), pick(scan.shift_rho_mm), pick(scan.shift_z_mm)
        k = np.arange(scan.n_channels)
        self.gamma = (k - (scan.n_channels - 1) / 2) * scan.dgamma  # uniform at the source
        theta_f = image_view_angle(scan.phi_rad[:n])[:, None]
        r_s = (scan.rho_mm + d_rho)[:, None]
        theta_s = theta_f + d_phi[:, None]
        # source, and ray direction cos(g) e + sin(g) u with e towards the isocentre (image frame)
        sx, sy = r_s * np.sin(theta_s), -r_s * np.cos(theta_s)
        g = self.gamma[None, :]
        dx = -np.cos(g) * np.sin(theta_s) + np.sin(g) * np.cos(theta_s)
        dy = np.cos(g) * np.cos(theta_s) + np.sin(g) * np.sin(theta_s)
        fx, fy = scan.rho_mm * np.sin(theta_f), -scan.rho_mm * np.cos(theta_f)
        # hit of the detector circle |S + t d - F| = d0, far side (t > 0)
        px, py = sx - fx, sy - fy
        b = px * dx + py * dy
        t = -b + np.sqrt(b**2 - (px**2 + py**2 - scan.d0_mm**2))
        hx, hy = px + t * dx, py + t * dy  # hit point relative to the focal centre
        ex, ey = -np.sin(theta_f), np.cos(theta_f)
        ux, uy = np.cos(theta_f), np.sin(theta_f)
        gamma_det = np.arctan2(hx * ux + hy * uy, hx * ex + hy * ey)
        self.channel = channel_of_fan_angle(gamma_det, scan.central_channel, scan.dgamma)
        self.distance = t  # in-plane source -> detector, mm (d0 without FFS)
        self.foot = r_s * np.cos(g)  # source -> point of the ray nearest the axis
        self.source_dz = d_z
        self.sources = FanViews(theta_s[:, 0], r_s[:, 0])

    def _geometry(self, image_size: int, pixel_size_mm: float) -> RebinnedGeometry:
        scan = self.scan
        n = scan.views_per_rotation  # either direction of rotation: every view carries its own angle
        photons = float(np.mean(scan.photons)) if scan.photons is not None else 1.5e5
        values = {
            "name": "dicom-ct-pd", "description": f"rebinned from {scan.source}", "beam": "fan",
            "detector_shape": "curved", "source_to_origin_mm": scan.rho_mm, "source_to_detector_mm": scan.d0_mm,
            "n_detectors": scan.n_channels, "detector_pitch_mm": scan.channel_spacing_mm, "n_views": n,
            "angular_range_deg": 360.0,
            "start_angle_deg": float(np.degrees(image_view_angle(scan.phi_rad[0]))) % 360.0,
            "image_size": image_size, "pixel_size_mm": pixel_size_mm,
            "protocol": {"incident_photons": photons, "electronic_noise_std": self.electronic_noise_std,
                         "mu_water_per_mm": scan.mu_water_per_mm, "bowtie_water_equiv_mm": 0.0}}
        geom = geometry_from_dict(values, f"{scan.source} (DICOM-CT-PD geometry with --image-size, --pixel-size-mm)")
        return RebinnedGeometry(geom, self.sources)

    def z_range_mm(self) -> tuple[float, float]:
        """Table positions at which every ray of every view is measured (between detector edges)."""
        scan = self.scan
        reach = (scan.n_rows / 2 - abs(scan.central_row - (scan.n_rows + 1) / 2)) * scan.row_spacing_mm
        reach = reach * float((self.foot / self.distance).min()) - float(np.abs(self.source_dz).max())
        lo = np.nanmin(self.z_source, axis=0)
        hi = np.nanmax(self.z_source, axis=0)
        return float(lo.max() - reach), float(hi.min() + reach)

    def __call__(self, z_mm: float, views: np.ndarray | None = None) -> np.ndarray:
        """Fan-beam sinogram of the slice ``z_mm``: (views, channels) float32 line integrals."""
        lo, hi = self.z_range_mm()
        if not (lo - 1e-6 <= z_mm <= hi + 1e-6):
            raise InputError(self.scan.source, "--z-mm", f"table positions within the scanned range "
                             f"[{lo:.2f}, {hi:.2f}] mm", z_mm)
        views = np.arange(self.scan.views_per_rotation) if views is None else np.asarray(views)
        dz = z_mm - self.z_source[:, views]  # (turns, V)
        below = np.where(dz >= 0, dz, np.inf).argmin(axis=0)
        above = np.where(dz < 0, -dz, np.inf).argmin(axis=0)
        cols = np.arange(len(views))
        samples, fits, gaps = [], [], []
        for turn, side in ((below, dz >= 0), (above, dz < 0)):
            gap = np.abs(dz[turn, cols])
            ok = np.isfinite(gap) & side[turn, cols]
            value, inside = self._sample(self.chain[turn, views], views, z_mm)
            samples.append(value)
            fits.append(ok[:, None] & inside)
            gaps.append(np.where(ok, gap, np.inf)[:, None])
        with np.errstate(invalid="ignore", divide="ignore"):
            both = gaps[1] / (gaps[0] + gaps[1])
        w_below = np.where(fits[0] & fits[1], both, fits[0].astype(float))
        w_below = np.where(~fits[0] & ~fits[1], (gaps[0] <= gaps[1]).astype(float), w_below)
        return (w_below * samples[0] + (1 - w_below) * samples[1]).astype(np.float32)

    def _sample(self, helical: np.ndarray, k: np.ndarray, z_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """Cone-corrected, row- and channel-interpolated samples of helical views (one per 2-D view)."""
        scan = self.scan
        m = np.maximum(helical, 0)[:, None]
        z_src = (scan.z_mm + (scan.shift_z_mm if self.model_ffs else 0.0))[m]
        dzs = self.source_dz[k][:, None]
        d, foot = self.distance[k], self.foot[k]
        v = dzs + (z_mm - z_src) * d / foot  # hit height above the focal centre, mm
        row = row_of_height(v, scan.central_row, scan.row_spacing_mm)
        fits = (row >= -0.5) & (row <= scan.n_rows - 0.5) & (helical >= 0)[:, None]
        row = np.clip(row, 0, scan.n_rows - 1 - 1e-9)
        r0 = np.minimum(row.astype(np.int64), scan.n_rows - 2) if scan.n_rows > 1 else np.zeros_like(row, np.int64)
        fr = row - r0
        ch = np.clip(self.channel[k], 0, scan.n_channels - 1 - 1e-9)
        c0 = np.minimum(ch.astype(np.int64), scan.n_channels - 2)
        fc = ch - c0
        total = 0.0
        for dr, wr in ((0, 1 - fr), (1, fr)):
            rr = np.minimum(r0 + dr, scan.n_rows - 1)
            height = (scan.central_row - 1 - rr) * scan.row_spacing_mm - dzs
            cone = d / np.sqrt(d**2 + height**2)
            for dc, wc in ((0, 1 - fc), (1, fc)):
                p = self._read(m, rr, c0 + dc)
                total = total + wr * wc * cone * p
        return total, fits

    def _read(self, m: np.ndarray, rows: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """Line integrals of raw readings, with the dose-reduction noise of each reading if asked."""
        p = self.scan.line_integrals(m, rows, channels).astype(np.float64)
        if self.dose_fraction < 1:
            i0 = self.scan.photons[m, channels]
            var = dose_reduction_variance(p, i0, self.dose_fraction, self.electronic_noise_std)
            p = p + np.sqrt(var) * reading_noise(self.seed, m, rows, channels, self.scan.n_rows, self.scan.n_channels)
        return p


def reading_noise(seed: int, views, rows, channels, n_rows: int, n_channels: int) -> np.ndarray:
    """Standard normal noise that is a fixed function of (seed, view, row, channel).

    Counter-based (SplitMix64 hash + Box-Muller), so a raw reading used by several slices or by
    both turns gets the same noise every time, without storing a noise copy of the scan.
    """
    with np.errstate(over="ignore"):
        key = ((np.asarray(views, np.uint64) * np.uint64(n_rows) + np.asarray(rows, np.uint64)) * np.uint64(n_channels)
               + np.asarray(channels, np.uint64)) * np.uint64(2)
        offset = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        u1 = _uniform(key + offset)
        u2 = _uniform(key + np.uint64(1) + offset)
    return np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)


def _uniform(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser -> uniform in (0, 1]."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 1.0) / float(1 << 53)


def with_grid(rebinned: RebinnedGeometry, **changes) -> RebinnedGeometry:
    return RebinnedGeometry(dataclasses.replace(rebinned.geom, **changes), rebinned.sources)

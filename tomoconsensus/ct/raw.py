"""Raw scanner projections (DICOM-CT-PD helical scans) -> split fan-beam slices for preparation.

For each requested table position ``z``: single-slice rebinning of the helical views
(:mod:`tomoconsensus.ct.rebin`), then the usual CT modality: FBP of the x1 views, of the x2
views and of all views (curved detector, per-view sources). The halves are fixed per scan
(:func:`~tomoconsensus.ct.rebin.split_views`) and, because rebinned view ``k`` reads only
helical views ``m = k (mod N)``, they are disjoint sets of helical measurements. With
``reference_projections`` (the paper's full-dose scan of the same patient) the reference is the
FBP of all its rebinned views at the same ``z`` and grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from tomoconsensus.ct.dicom_pd import HelicalScan, read_projections
from tomoconsensus.ct.modality import CTModality
from tomoconsensus.ct.noise import mu_to_hu
from tomoconsensus.ct.rebin import Rebinner, split_views
from tomoconsensus.errors import InputError
from tomoconsensus.modality import Slice
from tomoconsensus.tomo.curved import fbp_operator

#: Most table positions one ``--z-mm`` may ask for (0.1 mm steps over a 1 m scan).
MAX_SLICES = 10_000


def _grid_count(text: str, start: float, stop: float, step: float) -> int:
    """Positions ``start, start + step, ... <= stop``, bounded by :data:`MAX_SLICES` before any allocation."""
    count = (stop - start) / step + 1 + 1e-9
    if not math.isfinite(count) or count > MAX_SLICES:
        raise InputError("--z-mm", "z-mm", f"at most {MAX_SLICES} table positions (a larger step)",
                         f"{text!r}: {count:.3g} positions")
    return math.floor(count)


def parse_z_list(text: str, z_range_mm: tuple[float, float] | None = None) -> list[float]:
    """``"120,130"``, ``"100:200:5"`` (start:stop:step, stop included when on the grid) or ``"all:5"``
    (every 5 mm across ``z_range_mm``, from its first whole millimetre) -> table positions in mm.

    At most :data:`MAX_SLICES` positions; every number finite."""
    try:
        if text.startswith("all:"):
            step = float(text[4:])
            if not (0 < step < math.inf) or z_range_mm is None or not all(map(math.isfinite, z_range_mm)):
                raise ValueError
            lo, hi = z_range_mm
            start = math.ceil(lo)
            if start > hi:
                return []
            return [round(start + i * step, 6) for i in range(_grid_count(text, start, hi, step))]
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not all(map(math.isfinite, (start, stop, step))) or step <= 0 or stop < start:
                raise ValueError
            return [round(start + i * step, 6) for i in range(_grid_count(text, start, stop, step))]
        values = [float(v) for v in text.split(",") if v.strip()]
        if not values or not all(map(math.isfinite, values)):
            raise ValueError
        if len(values) > MAX_SLICES:
            raise InputError("--z-mm", "z-mm", f"at most {MAX_SLICES} table positions", f"{len(values)} positions")
        return values
    except InputError:  # the slice count (an InputError is a ValueError too)
        raise
    except ValueError:
        raise InputError("--z-mm", "z-mm", "table positions 'z1,z2,...', 'start:stop:step' or 'all:step' "
                         "(mm, step > 0)", text) from None


@dataclass
class ProjectionSource:
    """Everything `prepare` needs from a raw scan: the modality, the slices and the attributes."""

    modality: CTModality
    slices: Iterator[Slice]
    n_slices: int
    attrs: dict[str, Any]


def _ffs_summary(scan: HelicalScan) -> list[dict[str, float]]:
    """Distinct source shifts of the FFS cycle (view k of the first cycle)."""
    from tomoconsensus.ct.dicom_pd import FFS_PERIOD

    period = FFS_PERIOD[scan.ffs_mode]
    return [{"view": k, "d_phi_rad": float(scan.shift_phi_rad[k]), "d_z_mm": float(scan.shift_z_mm[k]),
             "d_rho_mm": float(scan.shift_rho_mm[k])} for k in range(period)]


def projection_source(projections, z_mm: str, image_size: int, pixel_size_mm: float,
                      split: str = "auto", dose_fraction: float = 1.0, electronic_noise_std: float = 0.0,
                      seed: int = 0, reference_projections=None, device: str = "cpu",
                      progress: bool = True, stop_check: Callable[[], None] | None = None) -> ProjectionSource:
    """Read a scan (and its reference), check the table positions and set up the split FBPs.

    ``stop_check`` (e.g. :meth:`tomoconsensus.signals.StopRequest.check`) is called between files and
    between slices, the only places a signal may stop the run (never inside compiled kernels).
    """
    scan = read_projections(projections, progress, stop_check)
    rebin = Rebinner(scan, image_size, pixel_size_mm, dose_fraction=dose_fraction,
                     electronic_noise_std=electronic_noise_std, seed=seed)
    lo, hi = rebin.z_range_mm()
    if not lo <= hi:
        raise InputError(projections, "DetectorFocalCenterAxialPosition (7031,1002)", "a scan in which some table "
                         "position is measured from every view angle (a longer scan)",
                         f"none: the table positions each view angle covers do not overlap ({lo:.2f} > {hi:.2f} mm)")
    reference = None
    if reference_projections is not None:
        reference = Rebinner(read_projections(reference_projections, progress, stop_check), image_size, pixel_size_mm)
        z_text = z_mm
        z_mm = parse_z_list(z_mm, (max(lo, reference.z_range_mm()[0]), min(hi, reference.z_range_mm()[1])))
        rlo, rhi = reference.z_range_mm()
        missing = [z for z in z_mm if not rlo <= z <= rhi]
        if missing:
            raise InputError(reference_projections, "--z-mm", f"table positions within the reference scan's "
                             f"range [{rlo:.2f}, {rhi:.2f}] mm", missing[0])
    else:
        z_text = z_mm
        z_mm = parse_z_list(z_mm, (lo, hi))
    outside = [z for z in z_mm if not lo <= z <= hi]
    if outside or not z_mm:
        raise InputError(projections, "--z-mm", f"table positions within the scanned range [{lo:.2f}, {hi:.2f}] mm",
                         outside[0] if outside else z_text)
    geom, sources = rebin.geometry.geom, rebin.geometry.sources
    x1, x2, text = split_views(geom.n_views, split, scan.ffs_mode, seed)
    modality = CTModality(geom, device=device, sources=sources, halves=(x1, x2), split_description=text)
    attrs = {"source": str(projections), "source_kind": "DICOM-CT-PD helical projections, single-slice rebinning",
             "z_mm": list(z_mm), "z_range_mm": [lo, hi], "ffs_mode": scan.ffs_mode, "ffs_shifts": _ffs_summary(scan),
             "views_per_rotation": scan.views_per_rotation, "helical_views": scan.n_views,
             "split_strategy": split, "dose_fraction": dose_fraction, "electronic_noise_std": electronic_noise_std,
             "mu_water_per_mm": scan.mu_water_per_mm, "reader_notes": scan.notes,
             "ffs_shift_tags": scan.ffs_shift_tags, "preprocessing_flags": scan.file_info["preprocessing_flags"],
             "private_tag_vrs": scan.file_info["private_tag_vrs"], "transfer_syntax": scan.file_info["transfer_syntax"],
             "projection_geometry": scan.file_info["projection_geometry"],
             "incident_photons_mean": float(np.mean(scan.photons)) if scan.photons is not None else "not in files",
             "image_orientation": "column -> patient x, row -> patient y (as axial DICOM images)"}
    if reference is not None:
        attrs.update(reference_kind="FBP of all views of the reference scan (--reference-projections)",
                     reference_source=str(reference_projections))
    slices = _slices(scan, rebin, z_mm, reference, device, stop_check or (lambda: None))
    return ProjectionSource(modality, slices, len(z_mm), attrs)


def _slices(scan: HelicalScan, rebin: Rebinner, z_mm: list[float], reference: Rebinner | None,
            device: str, stop_check: Callable[[], None]) -> Iterator[Slice]:
    """One slice per table position; ``stop_check`` before each and after the last (the consumer
    reconstructs a slice between two calls), so a signal stops the run between slices."""
    ref_fbp = None
    if reference is not None:
        ref_fbp = fbp_operator(reference.geometry.geom, None, "hann", device, reference.geometry.sources)
    for z in z_mm:
        stop_check()
        sino = rebin(z)
        ref = None
        if reference is not None:
            mu = ref_fbp(reference(z)).cpu().numpy()
            ref = (mu_to_hu(mu, reference.scan.mu_water_per_mm) / 1000.0)[None].astype(np.float32)
        yield Slice(f"{scan.patient_id}_z{z:.2f}", scan.patient_id, sino, ref)
    stop_check()

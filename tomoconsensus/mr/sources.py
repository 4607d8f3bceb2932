"""MR slices for preparation: retrospective 4x undersampling of fully sampled multi-coil k-space.

For every slice a different random 4x mask is drawn (seeded per slice). A volume that the scanner
already undersampled (raw files whose ``acquired`` lines are not all; ``KSpaceVolume.fully_sampled``)
keeps its own lines instead (:func:`~tomoconsensus.mr.masks.split_acquired_mask`); it has no
reference image, and its scale comes from the zero-filled image of the acquired lines. ESPIRiT maps are
estimated from the central lines of the *undersampled* data (what a scanner would have; by default all
``center_lines`` of them, fewer with ``calib_width``). With ``virtual_coils``, every line of a slice is
first compressed to that many virtual coils by one matrix from the slice's central lines
(:func:`~tomoconsensus.mr.recon.coil_compression_matrix`): a fixed linear map of the data, the same for
both halves, so it changes nothing about their noise (white stays white). The halves' noise is zero-mean
but **not independent**: both hold the ``center_lines`` central lines, so their noise is identical there.
In the image that is a correlation of ``sum_shared w1 w2 / sqrt(sum w1^2 sum w2^2)`` at every pixel:
16 / 1584 = 0.010 for the demo's design (128 lines, 4x, 16 centre lines, outer weight 14), measured
0.0102 (``benchmarks/mr_halves_correlation.py``, docs/mr-simulation.md), all of it in the band of the
centre lines, where it is 1. The
reference is the fully sampled k-space combined with the same maps, so all images share phase and
scale. Each volume is scaled into [-1, 1] by one factor, 1 / max |reference| over the volume's
slices (stored with the slice; ``prepare mr`` records it per volume).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tomoconsensus.errors import InputError
from tomoconsensus.modality import Slice
from tomoconsensus.mr.io import KSpaceVolume
from tomoconsensus.mr.masks import (
    center_lines_mask,
    check_design,
    random_split_mask,
    split_acquired_mask,
    split_centre_lines,
)
from tomoconsensus.mr.modality import MRMeasurement
from tomoconsensus.mr.recon import (
    coil_compression_matrix,
    compress_coils,
    espirit_maps,
    to_channels,
    zero_filled_combination,
)

#: ESPIRiT's kernel width (SigPy's default): the calibration region must be at least this wide.
ESPIRIT_KERNEL_WIDTH = 6


def check_calibration(center_lines: int, calib_width: int | None = None, source=None) -> int:
    """The ESPIRiT calibration width: ``calib_width``, or all ``center_lines`` when None.

    Refuses a region narrower than ESPIRiT's kernel (SigPy fails inside otherwise) or wider than
    the central lines (only they are acquired in every mask).
    """
    if calib_width is None:
        calib_width, field = center_lines, "--center-lines"
    else:
        field = "--calib-width"
        if calib_width > center_lines:
            raise InputError(source, field, f"at most the {center_lines} central lines (--center-lines; only they "
                             "are acquired in every mask)", calib_width)
    if calib_width < ESPIRIT_KERNEL_WIDTH:
        raise InputError(source, field, f"at least {ESPIRIT_KERNEL_WIDTH} central lines for the ESPIRiT "
                         "calibration (about 12 or more for usable coil maps)", calib_width)
    return calib_width


def _prepared_slice(kspace: np.ndarray, design, volume: KSpaceVolume, center_lines: int, calib_width: int,
                    virtual_coils: int | None, device: int) -> tuple:
    """(undersampled k-space, maps, reference or None, max |image|) of one slice (module docstring)."""
    undersampled = kspace * design.mask[None, :, None]
    if virtual_coils is not None and virtual_coils < kspace.shape[0]:
        centre = undersampled[:, center_lines_mask(kspace.shape[-2], center_lines)]
        matrix = coil_compression_matrix(centre, virtual_coils)
        kspace, undersampled = compress_coils(kspace, matrix), compress_coils(undersampled, matrix)
    maps = espirit_maps(undersampled, calib_width, device)
    if not np.any(maps):
        raise InputError(volume.source, "center_lines", "a calibration region from which ESPIRiT finds "
                         "sensitivities (about 12 or more central lines)", center_lines)
    lines = np.ones(kspace.shape[-2]) if volume.fully_sampled else design.mask.astype(float)
    reference = zero_filled_combination(kspace, maps, lines)  # the scale's image where there is no reference
    return undersampled, maps, reference if volume.fully_sampled else None, float(np.abs(reference).max())


def undersampled_slices(volumes: list[KSpaceVolume], acceleration: float, center_lines: int, seed: int,
                        calib_width: int | None = None, variable_density: float = 0.0,
                        scales: dict[str, float] | None = None, device: int = -1,
                        virtual_coils: int | None = None, centre_split: bool = False) -> Iterator[Slice]:
    """Yield one :class:`Slice` per k-space slice, with its own random 4x mask.

    ``centre_split`` splits the ``center_lines`` between the halves too (:func:`split_centre_lines`;
    default: both halves keep them, docs/mr-simulation.md); ``calib_width`` (default: all ``center_lines``) is
    ESPIRiT's calibration region;
    ``virtual_coils`` compresses each slice's coils first (module docstring); ``scales`` (if given)
    receives volume_id -> scale factor; ``device`` is the SigPy device for ESPIRiT (-1 CPU, N GPU N).
    """
    calib_width = check_calibration(center_lines, calib_width)
    seeds = iter(np.random.SeedSequence(seed).spawn(sum(len(v.kspace) for v in volumes)))
    for volume in volumes:
        if volume.fully_sampled:
            check_design(volume.kspace.shape[-2], acceleration, center_lines, volume.source)
        prepared = []
        for i, kspace in enumerate(volume.kspace):
            rng = np.random.default_rng(next(seeds))
            n_lines = kspace.shape[-2]
            if volume.fully_sampled:
                design = random_split_mask(n_lines, rng, acceleration, center_lines, variable_density)
            else:
                design = split_acquired_mask(volume.acquired[i], center_lines, rng, volume.source)
            if centre_split:  # drawn after the mask and outer split: those stay as without it
                design = split_centre_lines(design, center_lines_mask(n_lines, center_lines), rng)
            prepared.append((i, design, *_prepared_slice(kspace, design, volume, center_lines, calib_width,
                                                         virtual_coils, device)))
        scale = 1.0 / max(p[5] for p in prepared)
        if scales is not None:
            scales[volume.volume_id] = scale
        for i, design, undersampled, maps, reference, _ in prepared:
            measurement = MRMeasurement(undersampled, design, maps, scale)
            yield Slice(f"{volume.volume_id}_{i:03d}", volume.volume_id, measurement,
                        None if reference is None else to_channels(reference, scale))


def check_volumes(volumes: list[KSpaceVolume], acceleration: float, center_lines: int) -> dict:
    """Check the mask design against every volume; return attributes for the prepared file.

    Fully sampled volumes are undersampled with ``acceleration`` (checked by ``check_design``);
    the scanner's own undersampling is kept (its acceleration is reported, ``--acceleration``
    does not apply) and its central lines must be acquired (``split_acquired_mask`` checks).
    The attributes record the raw readers' notes (format, pre-whitening, oversampling removal).
    """
    prospective = [v for v in volumes if not v.fully_sampled]
    for v in volumes:
        if v.fully_sampled:
            check_design(v.kspace.shape[-2], acceleration, center_lines, v.source)
    attrs: dict = {"undersampling": "retrospective (random masks drawn here)" if not prospective else
                   "the scanner's acquired lines" if len(prospective) == len(volumes) else "mixed"}
    if prospective:
        lines = np.concatenate([v.acquired for v in prospective])
        attrs["acquired_acceleration"] = float(lines.shape[1] / lines.sum(axis=1).mean())
    notes = [v.notes for v in volumes if v.notes]
    if notes:
        attrs["raw_format"] = sorted({n["format"] for n in notes})
        attrs["prewhitened"] = [bool(n["prewhitened"]) for n in notes]
        attrs["readout_oversampling_removed"] = [float(n["readout_oversampling"]) for n in notes]
    return attrs

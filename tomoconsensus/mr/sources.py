"""MR slices for preparation: retrospective 4x undersampling of fully sampled multi-coil k-space.

For every slice a different random 4x mask is drawn (seeded per slice). ESPIRiT maps are
estimated from the central lines of the *undersampled* data (what a scanner would have). The
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
from tomoconsensus.mr.masks import check_design, random_split_mask
from tomoconsensus.mr.recon import espirit_maps, to_channels, zero_filled_combination
from tomoconsensus.mr.split import MRMeasurement

#: ESPIRiT's kernel width (SigPy's default): the calibration region must be at least this wide.
ESPIRIT_KERNEL_WIDTH = 6


def check_calibration(center_lines: int, calib_width: int = 24, source=None) -> None:
    """Refuse a calibration region narrower than ESPIRiT's kernel (SigPy fails inside otherwise)."""
    if min(calib_width, center_lines) < ESPIRIT_KERNEL_WIDTH:
        raise InputError(source, "--center-lines", f"at least {ESPIRIT_KERNEL_WIDTH} central lines for the ESPIRiT "
                         "calibration (about 12 or more for usable coil maps)", center_lines)


def undersampled_slices(volumes: list[KSpaceVolume], acceleration: float, center_lines: int, seed: int,
                        calib_width: int = 24, variable_density: float = 0.0,
                        scales: dict[str, float] | None = None, device: int = -1) -> Iterator[Slice]:
    """Yield one :class:`Slice` per k-space slice, with its own random 4x mask.

    ``scales`` (if given) receives volume_id -> scale factor; ``device`` is the SigPy device for
    ESPIRiT (-1 CPU, N GPU N).
    """
    check_calibration(center_lines, calib_width)
    seeds = iter(np.random.SeedSequence(seed).spawn(sum(len(v.kspace) for v in volumes)))
    for volume in volumes:
        check_design(volume.kspace.shape[-2], acceleration, center_lines, volume.source)
        prepared = []
        for i, kspace in enumerate(volume.kspace):
            rng = np.random.default_rng(next(seeds))
            n_lines = kspace.shape[-2]
            design = random_split_mask(n_lines, rng, acceleration, center_lines, variable_density)
            undersampled = kspace * design.mask[None, :, None]
            maps = espirit_maps(undersampled, min(calib_width, center_lines), device)
            if not np.any(maps):
                raise InputError(volume.source, "center_lines", "a calibration region from which ESPIRiT finds "
                                 "sensitivities (about 12 or more central lines)", center_lines)
            reference = zero_filled_combination(kspace, maps, np.ones(n_lines))
            prepared.append((i, undersampled, design, maps, reference))
        scale = 1.0 / max(float(np.abs(p[4]).max()) for p in prepared)
        if scales is not None:
            scales[volume.volume_id] = scale
        for i, undersampled, design, maps, reference in prepared:
            yield Slice(f"{volume.volume_id}_{i:03d}", volume.volume_id,
                        MRMeasurement(undersampled, design, maps, scale), to_channels(reference, scale))

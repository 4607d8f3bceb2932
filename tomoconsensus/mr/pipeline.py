"""MR preparation: random 4x masks of fully sampled multi-coil k-space (or a scanner's own lines),
zero-filled halves, SENSE x_est.

``prepare mr`` (k-space read from files) and the MR demo (simulated k-space) both go through
:func:`mr_modality` and :func:`write_mr`.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

from tomoconsensus.data.prepared import PrepareSummary, write_prepared
from tomoconsensus.errors import InputError
from tomoconsensus.mr.io import KSpaceVolume
from tomoconsensus.mr.modality import MRModality
from tomoconsensus.mr.recon import sigpy_device
from tomoconsensus.mr.sources import check_calibration, check_volumes, undersampled_slices


def mr_modality(acceleration: float, center_lines: int, sense_lambda: float = 0.01,
                device: str = "auto", centre_split: bool = False) -> MRModality:
    """Masks of ``acceleration`` with ``center_lines`` central lines; ESPIRiT and SENSE on ``device`` (auto,
    cpu, cuda, cuda:N: SigPy on the GPU with CuPy, :func:`tomoconsensus.mr.recon.sigpy_device`).

    ``centre_split`` splits the central lines between the halves too (independent noise, e.g. for a
    noise map of the whole k-space). **Not for training**: each half then misses half of the centre and
    the halves' low-frequency aliasing is anti-correlated, which the networks learn to predict
    (``benchmarks/results/mr_centre_split.json``: validation RMSE 3.5x that of the shared centre).
    """
    return MRModality(acceleration, center_lines, sense_lambda, device=sigpy_device(device), centre_split=centre_split)


def _coils(volumes: list[KSpaceVolume]) -> int | dict[str, int]:
    """The coil count, or volume id -> coil count where the volumes differ."""
    counts = {v.volume_id: int(v.kspace.shape[1]) for v in volumes}
    return next(iter(counts.values())) if len(set(counts.values())) == 1 else counts


def write_mr(out: str | Path, modality: MRModality, volumes: list[KSpaceVolume], seed: int, source: str | Path,
             variable_density: float = 0.0, max_slices: int | None = None, noise_std: float | None = None,
             zero_filled: bool = True, progress: bool = True, keep_measurement: bool = False,
             calib_width: int | None = None, virtual_coils: int | None = None,
             simulation: dict | None = None) -> PrepareSummary:
    """Undersample, split, reconstruct and write the slices of ``volumes`` to the prepared file ``out``.

    Parameters
    ----------
    modality : MRModality
        From :func:`mr_modality`; one modality can write several files.
    volumes : list of KSpaceVolume
        k-space (slices, coils, ky, kx), complex; each volume is scaled into [-1, 1] by one factor
        computed over all its slices (attribute ``scale_factors``, volume id -> factor). Fully sampled
        volumes get random masks; a scanner's undersampled raw data keep their acquired lines (and the
        file records their ``acceleration``; ``check_volumes`` lists the attributes).
    seed : int
        Seed of the masks and of their split into halves.
    source : str or Path
        Where the k-space came from (attribute ``source``).
    variable_density : float
        0: uniform random lines; d > 0: line probability ~ |k|^-d.
    max_slices : int, optional
        Write only the first slices (the scale factors still use every slice of a volume).
    noise_std : float, optional
        The k-space noise standard deviation where it is known (simulated data): attribute ``noise_std``.
    calib_width : int, optional
        ESPIRiT's calibration region in central lines (default: all ``center_lines``); attribute ``calib_width``.
    virtual_coils : int, optional
        Compress each slice to this many virtual coils first (``tomoconsensus.mr.sources``); attribute
        ``virtual_coils`` (0: not compressed). ``coils`` stays the count of the data read.
    simulation : dict, optional
        How simulated k-space was made (e.g. ``ScannerSimulation.attributes``), written as attributes.
    zero_filled : bool
        Also store the zero-filled reconstruction of the 4x data as ``/baselines/zero_filled``.
    keep_measurement : bool
        Also store the k-space, coil maps and lines of each slice (``/measurement``): what data
        consistency after the networks needs (``denoise --data-consistency``).

    The file also records ``coils`` (the coil count; volume id -> count where volumes differ) and
    the modality's ``acceleration``, ``center_lines`` and SENSE settings.
    """
    raw_attrs = check_volumes(volumes, modality.acceleration, modality.center_lines)
    calib_width = check_calibration(modality.center_lines, calib_width)
    for v in volumes:  # more virtual coils than coils would compress nothing: refused, not recorded as done
        if virtual_coils is not None and virtual_coils > v.kspace.shape[1]:
            raise InputError(v.source, "--virtual-coils", f"at most the {v.kspace.shape[1]} coils of the data "
                             "(omit it to keep all coils)", virtual_coils)
    if raw_attrs["undersampling"] == "the scanner's acquired lines":  # the file's own acceleration
        modality = MRModality(raw_attrs["acquired_acceleration"], modality.center_lines, modality.sense_lambda,
                              modality.sense_iterations, modality.device, modality.centre_split)
    total = sum(len(v.kspace) for v in volumes)
    n = total if max_slices is None else min(max_slices, total)
    scales: dict[str, float] = {}  # filled while the slices are generated; written last by write_prepared
    slices = islice(undersampled_slices(volumes, modality.acceleration, modality.center_lines, seed,
                                        calib_width, variable_density, scales, modality.device, virtual_coils,
                                        modality.centre_split), n)
    attrs = {"source": str(source), "variable_density": variable_density, "coils": _coils(volumes),
             "calib_width": calib_width, "virtual_coils": virtual_coils or 0, "scale_factors": scales,
             **raw_attrs, **(simulation or {})}
    if noise_std is not None:
        attrs["noise_std"] = noise_std
    baselines = {"zero_filled": modality.zero_filled} if zero_filled else {}
    return write_prepared(out, modality, slices, n, seed, attrs, baselines, progress, keep_measurement)

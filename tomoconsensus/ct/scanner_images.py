"""Denoise the images a scanner made: a DICOM CT series (or a .npy/.npz HU stack) in, the same out.

Only a run whose input is one image can do this: a distilled run (g(x_est)), Noise2Clean, or a
Noise2Noise network applied to the image (its ``full`` variant). A consensus run needs the two half
reconstructions x1, x2, which a scanner does not deliver: distil it first (``tomoconsensus distill``).

Images are fed in the training units (HU/1000) on the training grid:

* the run's ``run_info.json`` records the training pixel size d_train; a series with pixel size d
  is refused when |d - d_train| / d_train > 10 % (a network trained at one pixel size sees another
  as a different object), unless ``resample``. Then the network's *correction* is resampled, not the
  image: with D the resampling of a slice (N x N) to the training grid M = round(N d / d_train)
  (area average when shrinking, bilinear when enlarging; same field of view) and U the way back,

      out = x + U(g(D x) - D x),

  so the output keeps the input's grid, geometry tags and all its detail finer than d_train; only the
  correction (the noise the network removes, and any change it makes) has the training grid's
  resolution. Down-sampling the image, denoising and up-sampling it back instead would blur the
  output to d_train (partial-volume errors of tens of HU beside high-contrast detail). A series whose
  pixel size is below half of d_train gets a :class:`CoarseCorrectionWarning`: the noise finer than
  d_train stays in the output (train at the scanner's grid for full denoising);
* the run must be a CT run (1 channel); an MR run (2 channels, real and imaginary) is refused, and
  so is a series whose Modality tag is not CT (an MR or PET series with a CT network);
* the network needs at least 2**depth pixels on its grid (its poolings and reflection padding);
* the output must be finite: a run with NaN or inf weights is refused when it is loaded, and an
  output with a non-finite pixel is never written.

Output: a new DICOM series (:mod:`tomoconsensus.ct.dicom_out`) in a folder written atomically, or,
when ``out`` ends in ``.npy``/``.npz``, the HU stack (``.npz``: ``hu``, ``pixel_spacing_mm``).
"""

from __future__ import annotations

import math
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from tomoconsensus import methods
from tomoconsensus.atomic import atomic_dir, atomic_path, check_apart, check_output_file, check_output_folder
from tomoconsensus.ct.dicom_out import write_derived_series
from tomoconsensus.ct.dicom_series import DicomSeries, read_dicom_series
from tomoconsensus.ct.io import read_image_array
from tomoconsensus.data.prepared import package_version
from tomoconsensus.denoising import check_finite_output
from tomoconsensus.errors import InputError
from tomoconsensus.learn.config import TrainConfig
from tomoconsensus.learn.runinfo import FILE as RUN_INFO
from tomoconsensus.learn.runinfo import read_run_info
from tomoconsensus.learn.trained import autocast_for, load_trained, resolve_device
from tomoconsensus.progress import progress as progress_bar

ARRAY_SUFFIXES = (".npy", ".npz")
#: Largest relative pixel-size difference accepted without resampling.
PIXEL_SIZE_TOLERANCE = 0.10
#: Largest image side (pixels) on the network's grid: 16384 x 16384 float32 is 1 GiB per slice.
MAX_GRID = 16384
#: Below this fraction of the training pixel size, --resample warns that the correction is much coarser.
COARSE_CORRECTION_RATIO = 0.5


class CoarseCorrectionWarning(UserWarning):
    """The series' pixels are much finer than the training grid: the network's correction is coarser."""


@dataclass
class ImageDenoiseSummary:
    out: Path
    n_slices: int
    seconds: float
    method: str
    variant: str
    pixel_size_mm: float
    training_pixel_size_mm: float
    resampled: bool
    clipped_pixels: int = 0

    def __str__(self) -> str:
        grid = (f"{self.pixel_size_mm:g} mm pixels kept, the network's correction computed on its "
                f"{self.training_pixel_size_mm:g} mm training grid" if self.resampled
                else f"{self.pixel_size_mm:g} mm pixels (trained at {self.training_pixel_size_mm:g} mm)")
        text = (f"wrote {self.out} : {self.n_slices} slices denoised with {self.method} ({self.variant}), {grid}, "
                f"in {self.seconds:.1f} s")
        warning = f"; WARNING: {self.clipped_pixels} pixels clipped to the int16 range"
        return text + (warning if self.clipped_pixels else "")


def image_run(run_dir: str | Path, device: torch.device) -> tuple[TrainConfig, dict, str, dict]:
    """(config, networks, image variant, training-data record) of a CT run that takes one image."""
    run_dir = Path(run_dir)
    config, models = load_trained(run_dir, device)
    variant = methods.IMAGE_VARIANTS.get(config.method)
    if variant is None:
        raise InputError(run_dir / "config.toml", "method", "a run whose input is one image (distill, noise2noise, "
                         "noise2clean); consensus needs the two half reconstructions: distil it first "
                         "(tomoconsensus distill)", config.method)
    info = read_run_info(run_dir)["training_data"]
    if config.channels != 1 or info.get("modality") != "ct" or info.get("units") != "HU/1000":
        raise InputError(run_dir / RUN_INFO, "modality", "a CT run (1 channel, HU/1000) for a CT image series",
                         f"{info.get('modality')} run with {config.channels} channel(s)")
    pixel = info.get("pixel_size_mm")
    if isinstance(pixel, bool) or not isinstance(pixel, int | float) or not (math.isfinite(pixel) and pixel > 0):
        raise InputError(run_dir / RUN_INFO, "training_data.pixel_size_mm", "the training pixel size in mm, a "
                         "finite number > 0", pixel)
    return config, models, variant, info


def check_series_modality(series: DicomSeries, run_dir: Path, run_modality: str = "ct") -> None:
    """Refuse a series whose Modality tag is not the run's (an MR or PET series with a CT network)."""
    for path, ds in zip(series.files, series.datasets, strict=True):
        modality = str(ds.get("Modality", "")).strip().upper()
        if modality != run_modality.upper():
            raise InputError(path, "Modality", f"'{run_modality.upper()}' like the training data of run "
                             f"{run_dir.name} (a {run_modality.upper()} network does not denoise another modality)",
                             modality or "missing")


def network_grid(n: int, zoom: float | None, depth: int, source: str | Path) -> int:
    """Pixels M of the grid the network runs on (N without resampling); InputError below 2**depth."""
    if zoom and n * zoom > MAX_GRID:
        raise InputError(source, "PixelSpacing", f"a pixel size whose training-grid image has at most {MAX_GRID} "
                         f"pixels per side", f"{n} pixels, {n * zoom:.3g} on the training grid")
    m = round(n * zoom) if zoom else n
    if m < 2**depth:
        where = f"{n} pixels, {m} on the training grid" if zoom else f"{n} pixels"
        raise InputError(source, "Rows/Columns", f"images of at least 2**depth = {2**depth} pixels on the "
                         f"network's grid (its {depth} poolings)", where)
    return m


def needs_resampling(pixel_mm: float, training_mm: float, source: str | Path, resample: bool) -> bool:
    """False within 10 % of the training pixel size; True with ``resample``; otherwise InputError."""
    if abs(pixel_mm - training_mm) <= PIXEL_SIZE_TOLERANCE * training_mm:
        return False
    if not resample:
        raise InputError(source, "PixelSpacing", f"a pixel size within 10 % of the run's training pixel size "
                         f"{training_mm:g} mm (or --resample to run the network on its training grid)",
                         f"{pixel_mm:g} mm")
    return True


def regrid(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, N, N) -> (B, C, size, size), same field of view: area average when shrinking (each output
    pixel the mean of the input area it covers: no aliasing), bilinear when enlarging."""
    if size == images.shape[-1]:
        return images
    if size < images.shape[-1]:
        return F.interpolate(images, size=(size, size), mode="area")
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


@torch.no_grad()
def apply_to_images(config: TrainConfig, models: dict, variant: str, hu: np.ndarray, device: torch.device,
                    zoom: float | None = None, batch_size: int = 4, progress: bool = True) -> np.ndarray:
    """Denoise HU slices (S, N, N) -> (S, N, N) float32 HU.

    ``zoom`` = d / d_train: the network g runs on the M = round(N zoom) grid and its correction is
    brought back, out = x + U(g(D x) - D x) (module docstring); without ``zoom``, out = g(x).
    """
    out = np.empty(hu.shape, np.float32)
    n = hu.shape[-1]
    m = network_grid(n, zoom, config.depth, "--images")
    for s in progress_bar(range(0, len(hu), batch_size), desc=f"denoise {config.method}", unit="batch",
                          enabled=progress):
        x = torch.from_numpy(np.ascontiguousarray(hu[s:s + batch_size], np.float32)[:, None] / 1000.0).to(device)
        coarse = regrid(x, m)
        with autocast_for(device, config.amp):
            y = methods.output(config.method, models, coarse, coarse, coarse, variant).float()
        y = y if m == n else x + regrid(y - coarse, n)
        out[s:s + batch_size] = 1000.0 * y.cpu().numpy()[:, 0]
    return out


def written_series_file(path: Path) -> bool:
    """Whether ``path`` is a slice of a series this command wrote (``slice_NNNN.dcm``, derived by tomoconsensus)."""
    import pydicom

    if not (path.is_file() and re.fullmatch(r"slice_\d{4,}\.dcm", path.name)):
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["DerivationDescription"])
    except Exception:  # not DICOM: not ours
        return False
    return str(ds.get("DerivationDescription", "")).startswith("Denoised by tomoconsensus")


def _check_out(out: Path, overwrite: bool, dicom_input: bool, images: Path, run_dir: Path) -> None:
    """The output is never the input series or the run, nor holds them nor lies inside them; a DICOM output
    folder is replaced only if it holds nothing but an earlier output of this command."""
    if out.suffix.lower() not in ARRAY_SUFFIXES and not dicom_input:
        raise InputError(out, "--out", "a .npy/.npz file for .npy/.npz input (a DICOM series needs DICOM input)")
    if out.suffix.lower() in ARRAY_SUFFIXES:
        check_apart(out, [images, run_dir])
        check_output_file(out, [images], overwrite)
    else:
        check_output_folder(out, [images, run_dir], overwrite, written_series_file,
                            "a DICOM series written by tomoconsensus denoise --images")


class _Writer:
    """Only ``write`` of a file: ``np.save`` then writes through it (OSError with errno on a full disk)
    instead of ``ndarray.tofile`` (whose error has none)."""

    def __init__(self, fh):
        self.write = fh.write


def _descriptions(run_dir: Path, config: TrainConfig, variant: str, info: dict, series: DicomSeries,
                  resampled: bool) -> tuple[str, str]:
    version = package_version()
    original = str(series.datasets[0].get("SeriesDescription", "")).strip()
    description = f"tomoconsensus {version} {config.method}" + (f" {original}" if original else "")
    teacher = read_run_info(run_dir).get("teacher")
    derivation = (f"Denoised by tomoconsensus {version}: {config.method} network ({variant} variant) of run "
                  f"'{run_dir.name}'" + (f", distilled from a {teacher['method']} run" if teacher else "")
                  + f"; trained on {info['pixel_size_mm']:g} mm pixels"
                  + (f"; the network ran on a {info['pixel_size_mm']:g} mm grid and its correction (output minus "
                     f"input there) was resampled to the {series.pixel_spacing_mm:g} mm pixels and added to the "
                     f"input: the correction has {info['pixel_size_mm']:g} mm resolution, finer detail and noise "
                     "are the input's" if resampled else "")
                  + ". Not for diagnostic use without validation.")
    return description, derivation


def denoise_images(run_dir: str | Path, images: str | Path, out: str | Path, resample: bool = False,
                   overwrite: bool = False, pixel_spacing_mm: float | None = None, batch_size: int = 4,
                   device: str = "auto", progress: bool = True) -> ImageDenoiseSummary:
    """Denoise a DICOM series folder (or .npy/.npz HU stack) with an image run; write a series (or array).

    Every check (input, run, pixel size, output folder) runs before anything is written; the output
    appears complete or not at all.
    """
    start = time.perf_counter()
    run_dir, images, out = Path(run_dir), Path(images), Path(out)
    if not images.exists():
        raise InputError(images, "--images", "an existing DICOM folder or .npy/.npz file", "not found")
    dicom_input = images.is_dir()
    if dicom_input and pixel_spacing_mm is not None:
        raise InputError("--pixel-spacing-mm", "pixel_spacing_mm", "only with .npy/.npz input (a DICOM series "
                         "gives its PixelSpacing)", pixel_spacing_mm)
    _check_out(out, overwrite, dicom_input, images, run_dir)
    dev = resolve_device(device)
    config, models, variant, info = image_run(run_dir, dev)
    if dicom_input:
        series = read_dicom_series(images)
        check_series_modality(series, run_dir)
        hu, spacing = series.hu, series.pixel_spacing_mm
    else:
        stack = read_image_array(images, pixel_spacing_mm)
        hu, spacing, series = stack.hu, float(stack.pixel_spacing_mm[0]), None
        if not np.allclose(stack.pixel_spacing_mm, spacing, rtol=1e-4):
            raise InputError(images, "pixel_spacing_mm", "one pixel size for the whole stack",
                             sorted(set(stack.pixel_spacing_mm.tolist())))
    training_mm = float(info["pixel_size_mm"])
    resampled = needs_resampling(spacing, training_mm, images, resample)
    network_grid(hu.shape[-1], spacing / training_mm if resampled else None, config.depth, images)
    if resampled and spacing < COARSE_CORRECTION_RATIO * training_mm:
        warnings.warn(f"the series' {spacing:g} mm pixels are finer than half the run's {training_mm:g} mm training "
                      f"pixels: the network's correction has {training_mm:g} mm resolution and the noise finer than "
                      "that stays in the output (train at the scanner's grid to remove it)",
                      CoarseCorrectionWarning, stacklevel=2)
    denoised = apply_to_images(config, models, variant, hu, dev, spacing / training_mm if resampled else None,
                               batch_size, progress)
    check_finite_output(denoised, run_dir)
    clipped = 0
    if out.suffix.lower() in ARRAY_SUFFIXES:
        with atomic_path(out) as tmp, open(tmp, "wb") as fh:
            if out.suffix.lower() == ".npy":  # through write(), not ndarray.tofile: a full disk keeps its errno
                np.save(_Writer(fh), denoised)
            else:
                np.savez(fh, hu=denoised, pixel_spacing_mm=np.full(len(denoised), spacing))
    else:
        description, derivation = _descriptions(run_dir, config, variant, info, series, resampled)
        with atomic_dir(out) as tmp:
            _, clipped = write_derived_series(series.datasets, denoised, tmp, description, derivation)
    return ImageDenoiseSummary(out, len(denoised), time.perf_counter() - start, config.method, variant, spacing,
                               training_mm, resampled, clipped)

"""Denoise the images a scanner made: a DICOM CT series (or a .npy/.npz HU stack) in, the same out.

Only a run whose input is one image can do this: a distilled run (g(x_est)), Noise2Clean, or a
Noise2Noise network applied to the image (its ``full`` variant). A consensus run needs the two half
reconstructions x1, x2, which a scanner does not deliver: distil it first (``tomoconsensus distill``).

Images are fed in the training units (HU/1000) on the training grid:

* the run's ``run_info.json`` records the training pixel size d_train; a series with pixel size d
  is refused when |d - d_train| / d_train > 10 % (a network trained at one pixel size sees another
  as a different object), unless ``resample``: each slice (N x N) is then resampled to
  M = round(N d / d_train) pixels (bilinear, anti-aliased when shrinking; same field of view),
  denoised, and resampled back to N x N, so the output keeps the input grid and geometry tags;
* the run must be a CT run (1 channel); an MR run (2 channels, real and imaginary) is refused.

Output: a new DICOM series (:mod:`tomoconsensus.ct.dicom_out`) in a folder written atomically, or,
when ``out`` ends in ``.npy``/``.npz``, the HU stack (``.npz``: ``hu``, ``pixel_spacing_mm``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from skimage.transform import resize

from tomoconsensus import methods
from tomoconsensus.atomic import atomic_dir, atomic_path, check_apart, check_output_file, check_output_folder
from tomoconsensus.ct.dicom_out import write_derived_series
from tomoconsensus.ct.io import DicomSeries, read_dicom_series, read_image_array
from tomoconsensus.data.prepared import package_version
from tomoconsensus.errors import InputError
from tomoconsensus.progress import progress as progress_bar
from tomoconsensus.runinfo import FILE as RUN_INFO
from tomoconsensus.runinfo import read_run_info
from tomoconsensus.train import TrainConfig, autocast_for, load_trained, resolve_device

ARRAY_SUFFIXES = (".npy", ".npz")
#: Largest relative pixel-size difference accepted without resampling.
PIXEL_SIZE_TOLERANCE = 0.10


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
        grid = (f"resampled {self.pixel_size_mm:g} -> {self.training_pixel_size_mm:g} mm and back" if self.resampled
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
    if info.get("pixel_size_mm") is None:
        raise InputError(run_dir / RUN_INFO, "pixel_size_mm", "the training pixel size", None)
    return config, models, variant, info


def needs_resampling(pixel_mm: float, training_mm: float, source: str | Path, resample: bool) -> bool:
    """False within 10 % of the training pixel size; True with ``resample``; otherwise InputError."""
    if abs(pixel_mm - training_mm) <= PIXEL_SIZE_TOLERANCE * training_mm:
        return False
    if not resample:
        raise InputError(source, "PixelSpacing", f"a pixel size within 10 % of the run's training pixel size "
                         f"{training_mm:g} mm (or --resample to run the network on its training grid)",
                         f"{pixel_mm:g} mm")
    return True


@torch.no_grad()
def apply_to_images(config: TrainConfig, models: dict, variant: str, hu: np.ndarray, device: torch.device,
                    zoom: float | None = None, batch_size: int = 4, progress: bool = True) -> np.ndarray:
    """Denoise HU slices (S, N, N) -> (S, N, N) float32 HU; ``zoom`` = d / d_train resamples around the network."""
    out = np.empty(hu.shape, np.float32)
    n = hu.shape[-1]
    m = max(1, round(n * zoom)) if zoom else n
    for s in progress_bar(range(0, len(hu), batch_size), desc=f"denoise {config.method}", unit="batch",
                          enabled=progress):
        x = hu[s:s + batch_size].astype(np.float32) / 1000.0
        if m != n:
            x = np.stack([resize(im, (m, m), order=1, anti_aliasing=m < n, preserve_range=True) for im in x])
        xt = torch.from_numpy(np.ascontiguousarray(x, np.float32)[:, None]).to(device)
        with autocast_for(device, config.amp):
            y = methods.output(config.method, models, xt, xt, xt, variant).float().cpu().numpy()[:, 0]
        if m != n:
            y = np.stack([resize(im, (n, n), order=1, anti_aliasing=n < m, preserve_range=True) for im in y])
        out[s:s + batch_size] = 1000.0 * y
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
                  + (f", applied after resampling from {series.pixel_spacing_mm:g} mm and back" if resampled else "")
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
    _check_out(out, overwrite, dicom_input, images, run_dir)
    dev = resolve_device(device)
    config, models, variant, info = image_run(run_dir, dev)
    if dicom_input:
        series = read_dicom_series(images)
        hu, spacing = series.hu, series.pixel_spacing_mm
    else:
        stack = read_image_array(images, pixel_spacing_mm)
        hu, spacing, series = stack.hu, float(stack.pixel_spacing_mm[0]), None
        if not np.allclose(stack.pixel_spacing_mm, spacing, rtol=1e-4):
            raise InputError(images, "pixel_spacing_mm", "one pixel size for the whole stack",
                             sorted(set(stack.pixel_spacing_mm.tolist())))
    training_mm = float(info["pixel_size_mm"])
    resampled = needs_resampling(spacing, training_mm, images, resample)
    denoised = apply_to_images(config, models, variant, hu, dev, spacing / training_mm if resampled else None,
                               batch_size, progress)
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

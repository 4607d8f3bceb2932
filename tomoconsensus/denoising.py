"""Apply a trained run to full slices of a prepared dataset and write the denoised images.

Output HDF5 (atomic write)::

    /denoised     float32 (slices, channels, H, W), same units as the prepared file
    /uncertainty  float32, same shape (with ``uncertainty=True``): per-pixel sigma from the halves' disagreement
                  (:mod:`tomoconsensus.iq.uncertainty`; attributes uncertainty_scale, uncertainty_calibrated_on, ...)
    /slice_id, /patient_id
    attributes    format = "tomoconsensus.denoised", method, variant, units, modality, run_dir, source
                  (+ data_consistency_lambda; + keep_means_mm, keep_means_sigma_px, keep_means_noise_fraction)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from tomoconsensus import methods
from tomoconsensus.atomic import atomic_path
from tomoconsensus.data.denoised import FORMAT, read_denoised  # noqa: F401 (read_denoised: public here too)
from tomoconsensus.data.prepared import PreparedDataset, read_prepared
from tomoconsensus.data.sets import PathsLike, expand_prepared, is_many, read_prepared_many
from tomoconsensus.errors import InputError, RunError
from tomoconsensus.hdf5 import create_hdf5
from tomoconsensus.learn.config import TrainConfig
from tomoconsensus.learn.trained import autocast_for, load_trained, resolve_device
from tomoconsensus.progress import progress as progress_bar


@dataclass
class DenoiseSummary:
    path: Path
    n_slices: int
    seconds: float
    method: str
    variant: str

    def __str__(self) -> str:
        return (f"wrote {self.path} : {self.n_slices} slices denoised with {self.method} ({self.variant}) "
                f"in {self.seconds:.1f} s")


@torch.no_grad()
def denoise(run_dir: str | Path, data_path: PathsLike, out: str | Path, variant: str | None = None,
            batch_size: int = 4, device: str = "auto", progress: bool = True,
            data_consistency: float | str | None = None, val_path: str | Path | None = None,
            keep_means_mm: float | None = None, uncertainty: bool = False) -> DenoiseSummary:
    """Denoise every slice of ``data_path`` with the networks of ``run_dir``.

    Parameters
    ----------
    data_path : path or list of paths
        Prepared files and folders of them (:mod:`tomoconsensus.data.sets`); one output file, slices in order.
    variant : str, optional
        Which output (see :mod:`tomoconsensus.methods`): consensus ``mean`` (default,
        (f1 + f2)((x1 + x2) / 2) / 2), ``z``, ``f1`` or ``full``;
        noise2noise ``mean`` (default, f((x1 + x2) / 2)), ``full`` (f(x_est)) or ``f1``;
        noise2clean and distill ``full`` (f(x_est)).
    data_consistency : float or "auto", optional
        Pull every output back onto the slice's acquired data with this weight lam
        (:mod:`tomoconsensus.data_consistency`; MR files prepared with ``--keep-measurement``);
        ``"auto"`` chooses lam on the held-out noisy file ``val_path``.
    keep_means_mm : float, optional
        Keep x_est's local means in structures of this diameter (mm) and larger
        (:mod:`tomoconsensus.local_means`: out = f + G * (x_est - f), sigma = D / 8); for quantitative
        ROI work (iodine, HU, activity), at the price of x_est's low-frequency noise (recorded).
    uncertainty : bool
        Also write ``/uncertainty``, the per-pixel sigma of the default output from the two half outputs'
        disagreement, calibrated on the held-out noisy file ``val_path`` where one is given
        (:func:`tomoconsensus.iq.uncertainty.uncertainty_for`).
    """
    start = time.perf_counter()
    dev = resolve_device(device)
    config, models, trained_on = load_trained(run_dir, dev, with_data=True)
    variant = methods.check_variant(config.method, variant)
    if data_consistency is not None and is_many(data_path):
        raise InputError("--data-consistency", "data-consistency", "one prepared file per denoise call (each file's "
                         "kept measurement is read)", f"{len(expand_prepared(data_path))} files")
    data = read_prepared_many(data_path)
    check_like_training(data, config.channels, trained_on)
    sigma = None
    if keep_means_mm is not None:
        from tomoconsensus.learn.runinfo import pixel_size_mm
        from tomoconsensus.local_means import keep_local_means, kept_noise_fraction, sigma_px

        sigma = sigma_px(keep_means_mm, pixel_size_mm(data.attrs), data.path)
    lamda = None
    if data_consistency is not None:  # checked before any work: the measurement must be in the files
        from tomoconsensus.data_consistency import apply_consistency, check_lamda, choose_lamda, refiner

        refined = refiner(data)
        if data_consistency == "auto":
            if val_path is None:
                raise InputError("--data-consistency", "auto", "a held-out noisy file to choose lambda on (--val)")
            val = read_prepared(val_path)
            lamda, _ = choose_lamda(config.method, models, val, dev, refined=refiner(val))
        else:
            lamda = check_lamda(float(data_consistency))
    denoised = apply_run(config, models, data, dev, variant, batch_size, progress)
    if lamda is not None:
        denoised = apply_consistency(denoised, data, lamda, refined)
    sigma_map, sigma_attrs = None, {}
    if uncertainty:
        from tomoconsensus.iq.uncertainty import uncertainty_for

        val = read_prepared(val_path) if val_path is not None else None
        sigma_map, sigma_attrs = uncertainty_for(config.method, models, data, dev, batch_size, val)
    kept = {}
    if sigma is not None:
        denoised = keep_local_means(denoised, data.x_est[:], sigma)
        kept = {"keep_means_mm": float(keep_means_mm), "keep_means_sigma_px": sigma,
                "keep_means_noise_fraction": kept_noise_fraction(data.x1[:], data.x2[:], sigma)}
    check_finite_output(denoised, run_dir)
    out = Path(out)
    with atomic_path(out) as tmp, create_hdf5(tmp) as f:
        f.attrs.update({"format": FORMAT, "method": config.method, "variant": variant,
                        "units": data.attrs.get("units", ""), "modality": data.modality,
                        "run_dir": str(run_dir), "source": str(data.path)})
        if lamda is not None:
            f.attrs["data_consistency_lambda"] = lamda
        f.attrs.update(kept)
        if sigma_map is not None:
            f.attrs.update(sigma_attrs)
            f.create_dataset("uncertainty", data=sigma_map, chunks=(1,) + sigma_map.shape[1:], compression="gzip",
                             compression_opts=4, shuffle=True)
        f.create_dataset("denoised", data=denoised, chunks=(1,) + denoised.shape[1:], compression="gzip",
                         compression_opts=4, shuffle=True)
        f.create_dataset("slice_id", data=data.slice_ids, dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("patient_id", data=data.patient_ids, dtype=h5py.string_dtype("utf-8"))
    described = variant if lamda is None else f"{variant}, data consistency lambda {lamda:.3g}"
    if kept:
        described += (f", local means of >= {keep_means_mm:g} mm kept (sigma {sigma:.2f} px, "
                      f"{100 * kept['keep_means_noise_fraction']:.0f} % of x_est's noise variance kept)")
    return DenoiseSummary(out, len(data), time.perf_counter() - start, config.method, described)


def check_finite_output(denoised: np.ndarray, run_dir: str | Path) -> None:
    """RunError (nothing is written) if an output pixel is NaN or inf (every denoise path checks this)."""
    finite = np.isfinite(denoised)
    if not finite.all():
        raise RunError(f"the output of run {run_dir} has {finite.size - np.count_nonzero(finite)} non-finite pixels "
                       "(NaN or inf); nothing was written (check the input's values and the run's weights)")


def check_like_training(data, channels: int, trained_on: dict) -> None:
    """Refuse data of another modality, units or image size than the run was trained on (named field)."""
    if data.channels != channels:
        raise InputError(data.path, "x1", f"{channels} channel(s) like the trained networks", data.channels)
    for key in ("modality", "units"):
        if trained_on.get(key) and str(data.attrs.get(key, "")) != trained_on[key]:
            raise InputError(data.path, key, f"{trained_on[key]!r} like the run's training data", data.attrs.get(key))
    shape = list(data.x1.shape[-2:])
    if trained_on.get("image_shape") and shape != list(trained_on["image_shape"]):
        raise InputError(data.path, "x1", f"images of {tuple(trained_on['image_shape'])} pixels like the run's "
                         "training data (prepare it with the same geometry or matrix)", tuple(shape))


@torch.no_grad()
def apply_run(config: TrainConfig, models: dict[str, torch.nn.Module], data: PreparedDataset, device: torch.device,
              variant: str, batch_size: int = 4, progress: bool = True) -> np.ndarray:
    """A trained run's output ``variant`` on every slice of ``data``: float32 (slices, C, H, W), data units."""
    outputs = []
    for s in progress_bar(range(0, len(data), batch_size), desc=f"denoise {config.method}", unit="batch",
                          enabled=progress):
        sl = slice(s, s + batch_size)
        x1, x2, x_est = (torch.from_numpy(getattr(data, k)[sl]).to(device) for k in ("x1", "x2", "x_est"))
        with autocast_for(device, config.amp):
            outputs.append(methods.output(config.method, models, x1, x2, x_est, variant,
                                          methods.mean_is_x_est(data.attrs)).float().cpu().numpy())
    return np.concatenate(outputs).astype(np.float32)

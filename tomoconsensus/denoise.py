"""Apply a trained run to full slices of a prepared dataset and write the denoised images.

Output HDF5 (atomic write)::

    /denoised     float32 (slices, channels, H, W), same units as the prepared file
    /slice_id, /patient_id
    attributes    format = "tomoconsensus.denoised", method, variant, units, modality, run_dir, source
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from tomoconsensus import methods
from tomoconsensus.atomic import atomic_path
from tomoconsensus.data.prepared import PreparedDataset, read_prepared
from tomoconsensus.errors import InputError
from tomoconsensus.hdf5 import open_hdf5, read_strings
from tomoconsensus.train import TrainConfig, autocast_for, load_trained, resolve_device

FORMAT = "tomoconsensus.denoised"


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
def denoise(run_dir: str | Path, data_path: str | Path, out: str | Path, variant: str | None = None,
            batch_size: int = 4, device: str = "auto", progress: bool = True) -> DenoiseSummary:
    """Denoise every slice of ``data_path`` with the networks of ``run_dir``.

    Parameters
    ----------
    variant : str, optional
        Which output (see :mod:`tomoconsensus.methods`): consensus ``z`` (default) or ``f1``;
        noise2noise ``mean`` (default, f((x1 + x2) / 2)), ``full`` (f(x_est)) or ``f1``;
        noise2clean and distill ``full`` (f(x_est)).
    """
    start = time.perf_counter()
    dev = resolve_device(device)
    config, models = load_trained(run_dir, dev)
    data = read_prepared(data_path)
    if data.channels != config.channels:
        raise InputError(data_path, "x1", f"{config.channels} channel(s) like the trained networks", data.channels)
    variant = variant or methods.VARIANTS[config.method][0]
    denoised = apply_run(config, models, data, dev, variant, batch_size, progress)
    out = Path(out)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"format": FORMAT, "method": config.method, "variant": variant,
                        "units": data.attrs.get("units", ""), "modality": data.modality,
                        "run_dir": str(run_dir), "source": str(data_path)})
        f.create_dataset("denoised", data=denoised, chunks=(1,) + denoised.shape[1:], compression="gzip",
                         compression_opts=4, shuffle=True)
        f.create_dataset("slice_id", data=data.slice_ids, dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("patient_id", data=data.patient_ids, dtype=h5py.string_dtype("utf-8"))
    return DenoiseSummary(out, len(data), time.perf_counter() - start, config.method, variant)


@torch.no_grad()
def apply_run(config: TrainConfig, models: dict[str, torch.nn.Module], data: PreparedDataset, device: torch.device,
              variant: str, batch_size: int = 4, progress: bool = True) -> np.ndarray:
    """A trained run's output ``variant`` on every slice of ``data``: float32 (slices, C, H, W), data units."""
    outputs = []
    for s in tqdm(range(0, len(data), batch_size), desc=f"denoise {config.method}", unit="batch",
                  disable=not progress):
        sl = slice(s, s + batch_size)
        x1, x2, x_est = (torch.from_numpy(getattr(data, k)[sl]).to(device) for k in ("x1", "x2", "x_est"))
        with autocast_for(device, config.amp):
            outputs.append(methods.output(config.method, models, x1, x2, x_est, variant).float().cpu().numpy())
    return np.concatenate(outputs).astype(np.float32)


def read_denoised(path: str | Path) -> tuple[np.ndarray, list[str], dict]:
    """(denoised (slices, C, H, W), slice ids, attributes) of a ``denoise`` output file."""
    path = Path(path)
    with open_hdf5(path, "denoised HDF5 file") as f:
        if f.attrs.get("format") != FORMAT or "denoised" not in f:
            raise InputError(path, "format", f"a '{FORMAT}' file written by tomoconsensus denoise", f.attrs.get("format"))
        ids = read_strings(f["slice_id"])
        return np.asarray(f["denoised"][()], np.float32), ids, dict(f.attrs)

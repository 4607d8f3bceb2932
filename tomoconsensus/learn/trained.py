"""What inference needs from a trained run: its networks, the device and autocast.

``denoise``, ``denoise --images``, the data-consistency refiner and the image-quality tools import this
module, never the training loop (:mod:`tomoconsensus.learn.loop`) nor ``torch.distributed``
(``tests/test_imports.py`` checks it in a fresh interpreter).
"""

from __future__ import annotations

from pathlib import Path

import torch

from tomoconsensus.devices import torch_device
from tomoconsensus.errors import InputError
from tomoconsensus.learn.checkpoints import build_models, load_checkpoint, load_weights, require_finite_weights
from tomoconsensus.learn.config import TrainConfig, train_config_from
from tomoconsensus.nn.unet import UNet


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N`` (:mod:`tomoconsensus.devices`)."""
    return torch_device(name)


def autocast_for(device: torch.device, amp: str):
    """bf16 autocast on CUDA when ``amp`` allows it; a no-op context on the CPU."""
    enabled = device.type == "cuda" and amp in ("auto", "bf16")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def load_trained(run_dir: str | Path, device: torch.device | str = "cpu",
                 with_data: bool = False
                 ) -> tuple[TrainConfig, dict[str, UNet]] | tuple[TrainConfig, dict[str, UNet], dict]:
    """Networks of a run (``model.pt``, or the latest ``checkpoint.pt`` of an unfinished run), in eval mode.

    With ``with_data``, also what the run recorded about its training data (empty for old runs).
    """
    run_dir = Path(run_dir)
    path = run_dir / "model.pt"
    if not path.exists():
        path = run_dir / "checkpoint.pt"
    if not path.exists():
        found = "not found" if not run_dir.exists() else "neither model.pt nor checkpoint.pt in it"
        raise InputError(run_dir, "--run", "a run folder written by tomoconsensus train (model.pt or "
                         "checkpoint.pt)", found)
    state = load_checkpoint(path, device)
    require_finite_weights(state["models"], path)
    config = train_config_from(state["config"], path)
    models = build_models(config)
    load_weights(models, state, path)
    for m in models.values():
        m.to(device).eval()
    return (config, models, dict(state.get("data") or {})) if with_data else (config, models)

"""Checkpoint and model files of a training run, and the networks they restore.

* ``checkpoint.pt``: training state (networks, optimiser, RNG state, step, the run config and what
  the data were), written atomically by :func:`save_checkpoint`; an exact resume continues from it.
* ``model.pt`` (and ``best.pt`` while training): network weights only, :func:`save_model`.

Both are read with ``torch.load(weights_only=True)`` (tensors and plain data only; a file holding
other Python objects is refused, loading them could run code) and carry ``format =
"tomoconsensus.checkpoint"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from tomoconsensus import methods
from tomoconsensus.atomic import atomic_path
from tomoconsensus.config import dataclass_from_dict
from tomoconsensus.errors import InputError
from tomoconsensus.nn.unet import UNet
from tomoconsensus.train_config import TrainConfig

CHECKPOINT_FORMAT = "tomoconsensus.checkpoint"


def build_models(config: TrainConfig) -> dict[str, UNet]:
    """The method's networks, initialised from ``config.seed`` (identical on every rank)."""
    torch.manual_seed(config.seed)
    if config.method == "consensus" and config.tie_networks:
        shared = UNet(config.channels, config.base_features, config.depth)
        return {"f1": shared, "f2": shared}
    return {name: UNet(config.channels, config.base_features, config.depth)
            for name in methods.NETWORKS[config.method]}


def save_checkpoint(path: Path, step: int, config: TrainConfig, models: Mapping[str, torch.nn.Module],
                    optimizer: torch.optim.Optimizer, data: Mapping[str, Any] | None = None) -> None:
    """Training state; ``data`` describes the training data (paths, modality, units, image shape)."""
    state = {"format": CHECKPOINT_FORMAT, "step": step, "config": dataclasses.asdict(config), "data": dict(data or {}),
             "models": {k: _unwrap(m).state_dict() for k, m in models.items()},
             "optimizer": optimizer.state_dict(), "rng_cpu": torch.get_rng_state(),
             "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint or model file safely (``weights_only=True``: tensors and plain data only)."""
    import pickle

    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "file", "an existing checkpoint or model file", "not found") from None
    except pickle.UnpicklingError:  # torch's message suggests weights_only=False: never do that here
        raise InputError(path, "file", "a tomoconsensus checkpoint loadable with weights_only=True (tensors and "
                         "plain data)", "it holds other Python objects; refused, loading them could run code") from None
    except Exception as exc:  # corrupt or truncated
        raise InputError(path, "file", "a tomoconsensus checkpoint loadable with weights_only=True",
                         str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, "format", f"'{CHECKPOINT_FORMAT}'",
                         state.get("format") if isinstance(state, dict) else type(state))
    return state


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "module", model)  # DistributedDataParallel
    return getattr(model, "_orig_mod", model)  # torch.compile


def save_model(path: Path, step: int, config: TrainConfig, models: Mapping[str, torch.nn.Module],
               extra: dict[str, Any] | None = None) -> None:
    """Network weights only (what ``denoise`` needs), written atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, "step": step, "config": dataclasses.asdict(config),
                    "models": {k: _unwrap(m).state_dict() for k, m in models.items()}, **(extra or {})}, tmp)


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
    config = dataclass_from_dict(TrainConfig, state["config"], path)
    models = build_models(config)
    for name, m in models.items():
        m.load_state_dict(state["models"][name])
        m.to(device).eval()
    return (config, models, dict(state.get("data") or {})) if with_data else (config, models)


def require_finite_weights(models: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """InputError naming the file and the first tensor with NaN or inf (such weights give NaN images)."""
    for name, weights in models.items() if isinstance(models, Mapping) else ():
        for key, tensor in weights.items() if isinstance(weights, Mapping) else ():
            if not (isinstance(tensor, torch.Tensor) and tensor.is_floating_point()):
                continue
            bad = int(tensor.numel() - torch.isfinite(tensor).sum())
            if bad:
                raise InputError(path, f"models.{name}.{key}", "finite network weights (a file with NaN or inf "
                                 "weights is damaged, or was saved from a diverged run)", f"{bad} non-finite values")

"""Checkpoint and model files of a training run, and the networks they restore.

* ``checkpoint.pt``: training state (networks, optimiser, RNG state, step, the run config and what
  the data were), written atomically by :func:`save_checkpoint`; an exact resume continues from it.
* ``model.pt`` (and ``best.pt`` while training): network weights only, :func:`save_model`; a
  finished run writes model.pt, then summary.json, then removes best.pt (:func:`finish_run`).

Both are read with ``torch.load(weights_only=True)`` (tensors and plain data only; a file holding
other Python objects is refused, loading them could run code) and carry ``format =
"tomoconsensus.checkpoint"``.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from tomoconsensus import methods
from tomoconsensus.atomic import atomic_path, write_text_atomic
from tomoconsensus.errors import InputError
from tomoconsensus.learn.config import TrainConfig, selection_key
from tomoconsensus.nn.unet import UNet

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
    _save(path, state)


def _save(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` into memory, then an atomic write: a full disk raises OSError (ENOSPC/EFBIG, turned into
    one line by :func:`~tomoconsensus.atomic.atomic_path`), not torch's RuntimeError; the old file is kept."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def load_checkpoint(path: Path, device: torch.device | str = "cpu", training: bool = False) -> dict[str, Any]:
    """Load a checkpoint or model file safely (``weights_only=True``: tensors and plain data only).

    Its fields are checked (:func:`check_state`; with ``training``, those a resume needs too): a crafted
    or damaged file is one line naming the file and the field, never a traceback or a wrong resume.
    """
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
    check_state(path, state, training)
    return state


def _kind(value: Any) -> str:
    return type(value).__name__ if not isinstance(value, (int, float, str)) or isinstance(value, bool) else repr(value)


def check_state(path: Path, state: dict[str, Any], training: bool = False) -> None:
    """Refuse (InputError naming ``path`` and the field) a checkpoint or model file whose fields are not what
    :func:`save_checkpoint` / :func:`save_model` write: step an integer >= 0, config a table, models a table of
    networks of tensors; with ``training`` also the optimiser state and the RNG states."""
    step = state.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise InputError(path, "step", "the training step, an integer >= 0", _kind(step))
    if not isinstance(state.get("config"), dict):
        raise InputError(path, "config", "the run configuration (a table)", _kind(state.get("config")))
    models = state.get("models")
    if not isinstance(models, dict) or not models or not all(
            isinstance(w, dict) and all(isinstance(t, torch.Tensor) for t in w.values()) for w in models.values()):
        raise InputError(path, "models", "the networks' weights (network name -> tensors)", _kind(models))
    if not training:
        return
    optimizer = state.get("optimizer")
    if not (isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
            and isinstance(optimizer.get("param_groups"), list)):
        raise InputError(path, "optimizer", "the optimiser state (state and param_groups)", _kind(optimizer))
    rng, shape = state.get("rng_cpu"), torch.get_rng_state().shape
    if not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.shape == shape):
        raise InputError(path, "rng_cpu", f"torch's CPU random state (a uint8 tensor of {shape.numel()} bytes)",
                         f"{rng.dtype} {tuple(rng.shape)}" if isinstance(rng, torch.Tensor) else _kind(rng))
    cuda = state.get("rng_cuda")
    if not (isinstance(cuda, list) and all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in cuda)):
        raise InputError(path, "rng_cuda", "a list of CUDA random states (uint8 tensors)", _kind(cuda))


def load_weights(models: Mapping[str, torch.nn.Module], state: Mapping[str, Any], path: Path) -> None:
    """Load ``state["models"]`` into ``models``; a missing network or weights of another shape is an InputError."""
    for name, m in models.items():
        if name not in state["models"]:
            raise InputError(path, f"models.{name}", f"the weights of network {name!r} of the configured method",
                             f"networks {sorted(state['models'])}")
        try:
            m.load_state_dict(state["models"][name])
        except RuntimeError as exc:  # missing keys, other shapes
            detail = " ".join(str(exc).split())[:300]
            raise InputError(path, f"models.{name}", "weights of the configured network (channels, base_features, "
                             "depth in config)", detail) from None


def restore_training(path: Path, state: Mapping[str, Any], models: Mapping[str, torch.nn.Module],
                     optimizer: torch.optim.Optimizer) -> int:
    """Load a checkpoint's networks, optimiser and RNG state (an exact resume); returns its step."""
    load_weights(models, state, path)
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise InputError(path, "optimizer", "the optimiser state of the configured networks",
                         " ".join(str(exc).split())[:200]) from None
    torch.set_rng_state(state["rng_cpu"].cpu())
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
    return int(state["step"])


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "module", model)  # DistributedDataParallel
    return getattr(model, "_orig_mod", model)  # torch.compile


def save_model(path: Path, step: int, config: TrainConfig, models: Mapping[str, torch.nn.Module],
               extra: dict[str, Any] | None = None) -> None:
    """Network weights only (what ``denoise`` needs), written atomically."""
    _save(path, {"format": CHECKPOINT_FORMAT, "step": step, "config": dataclasses.asdict(config),
                 "models": {k: _unwrap(m).state_dict() for k, m in models.items()}, **(extra or {})})


def finish_run(run_dir: Path, summary: Any, best: Path | None, save_last: Callable[[Path], None]) -> None:
    """Write a finished run's ``model.pt`` (a copy of ``best``, the selected epoch, or ``save_last``), then
    ``summary.json`` (``summary.to_json()``), then remove ``best``.

    A crash in between leaves model.pt with checkpoint.pt of the last step and no summary.json; the
    resumed run's finish then keeps model.pt as it is (the recorded selection: the last state never
    replaces it) and takes the summary's ``best_step``, ``validation`` and ``selection_criterion`` from it.
    """
    model = run_dir / "model.pt"
    if model.exists():  # an earlier finish of this run wrote it
        saved = load_checkpoint(model, "cpu")
        summary.best_step = saved["step"]
        config = saved["config"]
        summary.selection_criterion = (selection_key(config.get("method"), config.get("selection", "loss"))
                                       if "selection_loss" in saved else "")
        if isinstance(saved.get("validation"), dict):
            summary.validation = saved["validation"]
    elif best is not None:
        with atomic_path(model) as tmp:
            shutil.copyfile(best, tmp)
    else:
        save_last(model)
    write_text_atomic(run_dir / "summary.json", summary.to_json())
    (run_dir / "best.pt").unlink(missing_ok=True)


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

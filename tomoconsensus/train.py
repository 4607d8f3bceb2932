"""Training loop for consensus, Noise2Noise and Noise2Clean on prepared datasets.

* Paper defaults (Wu et al. 2019, sec. 3.2) in :class:`TrainConfig`; runs are configured by a TOML
  file (``examples/ct/train.toml``) with command-line overrides.
* Patches: the same random location is cut from x1, x2, x_est (and the reference); the locations
  of an epoch depend only on ``(seed, epoch)``.
* Device-aware: on CUDA, bf16 autocast, channels-last and (optionally) ``torch.compile``, with the
  whole dataset kept on the GPU when it fits; on CPU, torch uses every core.
* Multi-GPU / multi-process through ``torchrun`` and DistributedDataParallel: each rank takes an
  equal share of every global batch; rank 0 writes checkpoints and logs. The same script runs
  single-process.
* Checkpoints (networks, optimiser, RNG state, step) are written atomically every
  ``checkpoint_every_steps`` and, at the end of the current step, on Ctrl-C or SIGTERM;
  ``resume=True`` continues bit-exactly on the same device. A finished run is final; a run folder
  is locked while it trains (:mod:`tomoconsensus.runs`).

Run directory::

    config.toml      the resolved run configuration
    checkpoint.pt    latest training state (load with weights_only=True)
    model.pt         final network weights
    log.jsonl        one JSON object per logged step / validation
    summary.json     final numbers
    run_info.json    what the run was trained on (modality, pixel size, teacher; tomoconsensus.runinfo)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from tomoconsensus import methods
from tomoconsensus.atomic import atomic_path, write_text_atomic
from tomoconsensus.config import dataclass_from_dict, non_negative, positive, read_toml
from tomoconsensus.data.patches import PatchSampler, extract_patches
from tomoconsensus.data.prepared import PreparedDataset, read_prepared
from tomoconsensus.devices import DEVICE_HELP, check_device, torch_device
from tomoconsensus.errors import InputError, Interrupted, RunError
from tomoconsensus.metrics import PRESENTERS, slice_metrics
from tomoconsensus.nn.unet import UNet
from tomoconsensus.progress import progress as progress_bar
from tomoconsensus.runinfo import write_run_info
from tomoconsensus.runs import check_resume, check_run_dir, clear_run, run_lock
from tomoconsensus.signals import SIGNAL_NAMES, StopRequest

CHECKPOINT_FORMAT = "tomoconsensus.checkpoint"
LR_SCHEDULES = ("constant", "cosine")


def _known_method(v: str) -> bool:
    """one of consensus, noise2noise, noise2clean, distill"""
    return v in methods.METHODS


def _known_schedule(v: str) -> bool:
    """'constant' or 'cosine'"""
    return v in LR_SCHEDULES


def learning_rate_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """Adam step size for the update that follows ``step`` completed steps."""
    if config.lr_schedule == "cosine" and total_steps > 0:
        return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    return config.learning_rate


def _device_name(v: str) -> bool:
    try:
        check_device(v)
    except InputError:
        return False
    return True


_device_name.__doc__ = DEVICE_HELP


def _amp_mode(v: str) -> bool:
    """'auto' (bf16 on CUDA), 'bf16' or 'off'"""
    return v in ("auto", "bf16", "off")


@dataclass(frozen=True)
class TrainConfig:
    """Run configuration (paper values as defaults; CT beta values).

    Attributes
    ----------
    method : str
        ``consensus``, ``noise2noise``, ``noise2clean`` or ``distill`` (x_est -> a teacher run's output;
        set by ``tomoconsensus distill``).
    channels, base_features, depth : int
        UNet: 1 channel for CT, 2 (real, imaginary) for MR; 32 base features for CT, 64 for MR.
    patch_size, batch_size, patches_per_slice, epochs : int
        96, 40, 40, 100 in the paper.
    learning_rate : float
        Adam step size (1e-4).
    lr_schedule : str
        ``constant`` (the paper) or ``cosine``: the step size falls as
        ``learning_rate * (1 + cos(pi * step / total_steps)) / 2`` to zero at the last step, so the
        last epochs average out the noise of the minibatch gradients. A function of the step alone,
        so resuming stays exact.
    beta_w, beta_r : float
        Weight-decay and consistency weights (CT 5e-6, 0.5; MR 1e-6, 5).
    symmetric_n2n : bool
        Noise2Noise also maps x2 -> x1.
    tie_networks : bool
        Consensus with Theta1 = Theta2 (one network applied to both halves). Not the paper's
        choice (two networks), but it removes the flat direction of Eq. 8 (see
        :func:`tomoconsensus.losses.consensus`), which matters when training data are few.
    select_best : bool
        With validation data, ``model.pt`` holds the networks of the epoch with the lowest held-out
        *self-supervised* loss (the method's data term on held-out x1, x2: no reference needed).
        For consensus and Noise2Noise this loss is, up to a constant, an unbiased estimate of the
        error against the clean image, so it selects the epoch before the networks start fitting
        the training noise. Without validation data the last epoch is kept.
    max_steps : int
        Stop after this many steps (0: ``epochs`` full epochs); for reduced protocols.
    checkpoint_every_steps, log_every_steps : int
        How often to write ``checkpoint.pt`` and a ``log.jsonl`` line.
    device : str
        ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``...
    amp : str
        ``auto`` (bf16 autocast on CUDA), ``bf16`` or ``off``.
    channels_last, compile : bool
        CUDA speed options.
    """

    method: str = field(default="consensus", metadata={"check": _known_method})
    channels: int = field(default=1, metadata={"check": positive})
    base_features: int = field(default=32, metadata={"check": positive})
    depth: int = field(default=4, metadata={"check": positive})
    patch_size: int = field(default=96, metadata={"check": positive})
    batch_size: int = field(default=40, metadata={"check": positive})
    patches_per_slice: int = field(default=40, metadata={"check": positive})
    epochs: int = field(default=100, metadata={"check": positive})
    learning_rate: float = field(default=1e-4, metadata={"check": positive})
    lr_schedule: str = field(default="constant", metadata={"check": _known_schedule})
    beta_w: float = field(default=5e-6, metadata={"check": non_negative})
    beta_r: float = field(default=0.5, metadata={"check": non_negative})
    symmetric_n2n: bool = False
    tie_networks: bool = False
    select_best: bool = True
    seed: int = field(default=0, metadata={"check": non_negative})
    max_steps: int = field(default=0, metadata={"check": non_negative})
    checkpoint_every_steps: int = field(default=500, metadata={"check": positive})
    log_every_steps: int = field(default=10, metadata={"check": positive})
    device: str = field(default="auto", metadata={"check": _device_name})
    amp: str = field(default="auto", metadata={"check": _amp_mode})
    channels_last: bool = True
    compile: bool = False


def load_train_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a run config TOML (flat keys, or under ``[train]``) and apply overrides."""
    values: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        values = read_toml(path, "run config")
        values = values.get("train", values)
        if not isinstance(values, dict):
            raise InputError(source, "train", "a table [train] of run settings", values)
        values = dict(values)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return dataclass_from_dict(TrainConfig, values, source)


def config_to_toml(config: TrainConfig) -> str:
    lines = []
    for key, value in dataclasses.asdict(config).items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = f'"{value}"' if isinstance(value, str) else repr(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


@dataclass
class TrainSummary:
    """What a training run did."""

    run_dir: Path
    method: str
    steps: int
    epochs_completed: float
    seconds: float
    steps_per_second: float
    final_terms: dict[str, float]
    validation: dict[str, float]
    device: str
    best_step: int = 0
    #: The trained networks of this process (not serialised).
    models: dict[str, torch.nn.Module] = field(default_factory=dict, repr=False)

    def to_json(self) -> str:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "models"}
        d["run_dir"] = str(self.run_dir)
        return json.dumps(d, indent=2)

    def __str__(self) -> str:
        terms = ", ".join(f"{k} {v:.4g}" for k, v in self.final_terms.items())
        val = ", ".join(f"{k} {v:.4g}" for k, v in self.validation.items())
        return (f"trained {self.method} for {self.steps} steps ({self.epochs_completed:.2f} epochs) on {self.device} "
                f"in {self.seconds:.1f} s ({self.steps_per_second:.2f} steps/s); last: {terms}"
                + (f"; validation (selected step {self.best_step}): {val}" if val else "") + f"; run in {self.run_dir}")


# ----------------------------------------------------------------------------------------- setup

def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N`` (:mod:`tomoconsensus.devices`)."""
    return torch_device(name)


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the torchrun process group if launched by torchrun; returns (rank, world, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), world, device


def build_models(config: TrainConfig) -> dict[str, UNet]:
    """The method's networks, initialised from ``config.seed`` (identical on every rank)."""
    torch.manual_seed(config.seed)
    if config.method == "consensus" and config.tie_networks:
        shared = UNet(config.channels, config.base_features, config.depth)
        return {"f1": shared, "f2": shared}
    return {name: UNet(config.channels, config.base_features, config.depth)
            for name in methods.NETWORKS[config.method]}


def unique_parameters(models: Mapping[str, torch.nn.Module]) -> list[torch.nn.Parameter]:
    """Parameters of all networks, each once (tied networks share theirs)."""
    seen: dict[int, torch.nn.Parameter] = {}
    for m in models.values():
        for p in m.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


def dataset_tensors(data: PreparedDataset, device: torch.device) -> dict[str, torch.Tensor]:
    """Image stacks as tensors, on the GPU if they take less than half its free memory."""
    arrays = {"x1": data.x1, "x2": data.x2, "x_est": data.x_est}
    arrays.update({k: getattr(data, k) for k in ("reference", "teacher") if getattr(data, k) is not None})
    target = torch.device("cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if sum(a.nbytes for a in arrays.values()) < 0.5 * free:
            target = device
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(target) for k, v in arrays.items()}


def autocast_for(device: torch.device, amp: str):
    """bf16 autocast on CUDA when ``amp`` allows it; a no-op context on the CPU."""
    enabled = device.type == "cuda" and amp in ("auto", "bf16")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def wrap_for_training(models: Mapping[str, torch.nn.Module], config: TrainConfig, device: torch.device,
                      world: int) -> dict[str, torch.nn.Module]:
    """Apply torch.compile and DistributedDataParallel, once per distinct network (tied ones share)."""
    wrapped: dict[int, torch.nn.Module] = {}
    for m in models.values():
        if id(m) in wrapped:
            continue
        w = torch.compile(m) if config.compile else m
        if world > 1:
            if device.type == "cuda":  # batch statistics over the global batch, as in one process
                w = torch.nn.SyncBatchNorm.convert_sync_batchnorm(w)
            device_ids = [device.index] if device.type == "cuda" else None
            w = torch.nn.parallel.DistributedDataParallel(w, device_ids=device_ids)
        wrapped[id(m)] = w
    return {k: wrapped[id(m)] for k, m in models.items()}


# ----------------------------------------------------------------------------------- checkpoints

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


# ------------------------------------------------------------------------------------ validation

@torch.no_grad()
def validate(config: TrainConfig, models: Mapping[str, torch.nn.Module], data: PreparedDataset,
             device: torch.device, batch: int = 4) -> dict[str, float]:
    """Loss terms on full held-out slices, plus RMSE/SSIM of the output where a reference exists."""
    for m in models.values():
        m.eval()
    sums: dict[str, float] = {}
    per_slice: list[dict[str, float]] = []
    for start in range(0, len(data), batch):
        sl = slice(start, start + batch)
        tensors = {k: torch.from_numpy(getattr(data, k)[sl]).to(device) for k in ("x1", "x2", "x_est")}
        for key in ("reference", "teacher"):
            if getattr(data, key) is not None:
                tensors[key] = torch.from_numpy(getattr(data, key)[sl]).to(device)
        with autocast_for(device, config.amp):
            if methods.has_target(config.method, tensors):
                terms = methods.objective(config.method, models, tensors, config.beta_w, config.beta_r,
                                          config.symmetric_n2n)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(tensors["x1"])
            out = methods.output(config.method, models, tensors["x1"], tensors["x2"], tensors["x_est"])
        if data.reference is not None and data.modality in PRESENTERS:  # reference metrics: informative only
            out_np = out.float().cpu().numpy()
            per_slice += [slice_metrics(data.modality, o, r) for o, r in zip(out_np, data.reference[sl], strict=True)]
    for m in models.values():
        m.train()
    result = {f"val_{k}": v / len(data) for k, v in sums.items()}
    for key in (per_slice[0] if per_slice else {}):
        result[f"val_{key}"] = float(np.mean([s[key] for s in per_slice]))
    return result


# -------------------------------------------------------------------------------------- training

def check_data(data: PreparedDataset, config: TrainConfig, source: str | Path,
               like: PreparedDataset | None = None) -> None:
    """Refuse data the configured networks cannot take (channels, image smaller than 2**depth) or,
    given ``like`` (the training data), validation data of another modality or units."""
    if data.channels != config.channels:
        raise InputError(source, "x1", f"{config.channels} channel(s) as in the run config 'channels'", data.channels)
    smallest = min(data.x1.shape[-2:])
    if smallest < 2**config.depth:
        raise InputError(source, "x1", f"images of at least 2**depth = {2**config.depth} pixels for a UNet of "
                         f"depth {config.depth} (or a smaller depth)", data.x1.shape[-2:])
    if like is not None:
        for key in ("modality", "units"):
            if data.attrs.get(key) != like.attrs.get(key):
                raise InputError(source, key, f"{like.attrs.get(key)!r} like the training data", data.attrs.get(key))


def data_record(data: PreparedDataset, train_path: str | Path, val_path: str | Path | None) -> dict[str, Any]:
    """What a checkpoint records about its data (compared on resume and by ``denoise``)."""
    return {"train": str(Path(train_path).resolve()), "val": str(Path(val_path).resolve()) if val_path else "",
            "modality": data.modality, "units": str(data.attrs.get("units", "")),
            "image_shape": [int(n) for n in data.x1.shape[-2:]]}


def _finite_terms(terms: Mapping[str, torch.Tensor], step: int, config: TrainConfig, kept: str) -> dict[str, float]:
    """Loss terms as floats; RunError naming the step, what to change and what was kept if one is not finite."""
    values = {n: float(v.detach()) for n, v in terms.items()}
    if not all(math.isfinite(v) for v in values.values()):
        bad = ", ".join(f"{n} {v}" for n, v in values.items() if not math.isfinite(v))
        raise RunError(f"training diverged at step {step} ({bad}): lower the learning rate (now "
                       f"{config.learning_rate:g}, e.g. --learning-rate {config.learning_rate / 10:g}) or check the "
                       f"data, then train again with --overwrite; kept: {kept}")
    return values


def _stop_everywhere(stop: StopRequest, world: int, device: torch.device) -> int:
    """The signal number if any process received Ctrl-C/SIGTERM (all ranks stop at the same step), else 0."""
    signum = stop.signum or 0
    if world > 1:
        flag = torch.tensor([signum], device=device if device.type == "cuda" else "cpu")
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        signum = int(flag.item())
    return signum


def train(config: TrainConfig, train_path: str | Path, run_dir: str | Path, val_path: str | Path | None = None,
          resume: bool = False, stop_after_steps: int | None = None, progress: bool = True,
          overwrite: bool = False) -> TrainSummary:
    """Train ``config.method`` on a prepared dataset; see the module docstring for the run directory.

    Parameters
    ----------
    stop_after_steps : int, optional
        Leave the loop (with a checkpoint) once this global step is reached, as if interrupted.
    overwrite : bool
        Start an existing run folder again from scratch (its run files are removed).
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume, overwrite)
    device = resolve_device(config.device)
    rank, world, device = init_distributed(device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    data = read_prepared(train_path)
    check_data(data, config, train_path)
    if config.method == "noise2clean" and data.reference is None:
        raise InputError(train_path, "reference", "a clean reference for --method noise2clean "
                         "(prepare from clean images, or use consensus/noise2noise)", "missing")
    if config.method == "distill" and data.teacher is None:
        raise InputError(train_path, "teacher", "a teacher's output (made by tomoconsensus distill)", "missing")
    if config.batch_size % world:
        raise InputError("config", "batch_size", f"a multiple of the {world} processes", config.batch_size)
    val = read_prepared(val_path) if val_path else None
    if val is not None:
        check_data(val, config, val_path, like=data)
    _, _, height, width = data.x1.shape
    sampler = PatchSampler(len(data), height, width, config.patch_size, config.patches_per_slice,
                           config.batch_size, config.seed)
    if sampler.batches_per_epoch == 0:
        raise InputError(train_path, "slices", f"at least {config.batch_size} patches per epoch "
                         "(more slices, more patches_per_slice or a smaller batch_size)", len(data))
    if sampler.patch_size < 2**config.depth:
        raise InputError("config", "depth", f"a UNet whose {config.depth} poolings fit the {sampler.patch_size}-pixel "
                         f"patches (patch_size >= 2**depth = {2**config.depth}: "
                         "a larger patch_size or a smaller depth)",
                         config.depth)
    record = data_record(data, train_path, val_path)
    checkpoint_path = run_dir / "checkpoint.pt"
    state = load_checkpoint(checkpoint_path, device) if resume else None
    if state is not None:
        check_resume(checkpoint_path, state, dataclasses.asdict(config), record)
    if world > 1:  # every rank has checked the folder before rank 0 writes to it
        dist.barrier()
    with run_lock(run_dir) if rank == 0 else contextlib.nullcontext():
        if overwrite and rank == 0:
            clear_run(run_dir)
        return _train_locked(config, data, val, sampler, run_dir, state, record, rank, world, device,
                             stop_after_steps, progress)


def _train_locked(config: TrainConfig, data: PreparedDataset, val: PreparedDataset | None, sampler: PatchSampler,
                  run_dir: Path, state: dict[str, Any] | None, record: dict[str, Any], rank: int, world: int,
                  device: torch.device, stop_after_steps: int | None, progress: bool) -> TrainSummary:
    stacks = dataset_tensors(data, device)
    total_steps = sampler.batches_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    models = build_models(config)
    memory_format = torch.channels_last if (device.type == "cuda" and config.channels_last) else torch.contiguous_format
    for m in models.values():
        m.to(device=device, memory_format=memory_format)
    optimizer = torch.optim.Adam(unique_parameters(models), lr=config.learning_rate)

    checkpoint_path = run_dir / "checkpoint.pt"
    log_path = run_dir / "log.jsonl"
    step = 0
    if state is not None:
        for name, m in models.items():
            m.load_state_dict(state["models"][name])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_cpu"].cpu())
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
        step = int(state["step"])
        if rank == 0 and log_path.exists():  # drop log lines written after the checkpoint
            kept = [ln for ln in log_path.read_text().splitlines() if json.loads(ln).get("step", 0) <= step]
            write_text_atomic(log_path, "".join(ln + "\n" for ln in kept))
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.toml", config_to_toml(config))
        write_run_info(run_dir, data, val)

    train_models = wrap_for_training(models, config, device, world)

    start_step, start_time = step, time.perf_counter()
    saved_step = step if state is not None else None
    terms_f: dict[str, float] = {}
    validation: dict[str, float] = {}
    selection_key = f"val_{config.method}"  # the self-supervised data term on held-out slices
    best = {"step": 0, "loss": math.inf, "validation": {}}
    best_path = run_dir / "best.pt"
    if state is not None and best_path.exists():
        saved = load_checkpoint(best_path, "cpu")
        best.update(step=saved["step"], loss=saved["selection_loss"], validation=saved["validation"])
    epoch_coords, coords_epoch = None, -1
    bar = progress_bar(total=total_steps, initial=step, desc=f"train {config.method}", unit="step",
                       every=sampler.batches_per_epoch, enabled=progress and rank == 0)
    log = open(log_path, "a") if rank == 0 else None
    try:
        with StopRequest() as stop:
            while step < total_steps:
                epoch, k = divmod(step, sampler.batches_per_epoch)
                if epoch != coords_epoch:
                    epoch_coords, coords_epoch = sampler.epoch_coordinates(epoch), epoch
                coords = epoch_coords[k][rank::world]
                batch = {name: extract_patches(stack, coords, sampler.patch_size).to(device, non_blocking=True)
                         .contiguous(memory_format=memory_format) for name, stack in stacks.items()}
                with autocast_for(device, config.amp):
                    terms = methods.objective(config.method, train_models, batch, config.beta_w, config.beta_r,
                                              config.symmetric_n2n)
                optimizer.zero_grad(set_to_none=True)
                terms["total"].backward()
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate_at(config, step, total_steps)
                optimizer.step()
                step += 1
                bar.update(1)
                log_now = step % config.log_every_steps == 0 or step == total_steps
                save_now = rank == 0 and (step % config.checkpoint_every_steps == 0 or step == total_steps)
                if log_now or save_now:  # never checkpoint a diverged state
                    kept = (f"{checkpoint_path} (step {saved_step}, the last finite state)" if saved_step is not None
                            else "no checkpoint (it diverged before the first one)")
                    terms_f = _finite_terms(terms, step, config, kept)
                if log_now:
                    bar.set_postfix({n: f"{v:.3g}" for n, v in terms_f.items()})
                    if log:
                        log.write(json.dumps({"split": "train", "step": step,
                                              "epoch": step / sampler.batches_per_epoch, **terms_f}) + "\n")
                        log.flush()
                end_of_epoch = step % sampler.batches_per_epoch == 0 or step == total_steps
                if val is not None and end_of_epoch and rank == 0:
                    validation = validate(config, models, val, device)
                    log.write(json.dumps({"split": "val", "step": step, "epoch": step / sampler.batches_per_epoch,
                                          **validation}) + "\n")
                    log.flush()
                    if config.select_best and validation.get(selection_key, math.inf) < best["loss"]:
                        best.update(step=step, loss=validation[selection_key], validation=validation)
                        save_model(best_path, step, config, models, {"selection_loss": best["loss"],
                                                                     "validation": validation, "data": record})
                if save_now:
                    save_checkpoint(checkpoint_path, step, config, models, optimizer, record)
                    saved_step = step
                signum = _stop_everywhere(stop, world, device)
                if signum:
                    if rank == 0 and saved_step != step:
                        save_checkpoint(checkpoint_path, step, config, models, optimizer, record)
                    raise Interrupted(signum, f"{SIGNAL_NAMES.get(signum, signum)} at step {step} of {total_steps}: "
                                      f"checkpoint saved in {checkpoint_path}; continue with --resume")
                if stop_after_steps is not None and step >= stop_after_steps:
                    break
    finally:
        bar.close()
        if log:
            log.close()
    if world > 1:  # DDP syncs buffers before each forward; make the final running stats agree too
        for m in models.values():
            for buffer in m.buffers():
                dist.broadcast(buffer, src=0)
    if rank == 0 and step != total_steps:
        save_checkpoint(checkpoint_path, step, config, models, optimizer, record)
    seconds = time.perf_counter() - start_time
    selected = config.select_best and best_path.exists()
    summary = TrainSummary(run_dir, config.method, step, step / sampler.batches_per_epoch, seconds,
                           (step - start_step) / seconds if seconds > 0 else 0.0, terms_f,
                           best["validation"] if selected else validation, str(device),
                           best["step"] if selected else step, models)
    if rank == 0 and step == total_steps:
        if selected:
            os.replace(best_path, run_dir / "model.pt")
        else:
            save_model(run_dir / "model.pt", step, config, models, {"data": record})
        write_text_atomic(run_dir / "summary.json", summary.to_json())
    return summary


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
    config = dataclass_from_dict(TrainConfig, state["config"], path)
    models = build_models(config)
    for name, m in models.items():
        m.load_state_dict(state["models"][name])
        m.to(device).eval()
    return (config, models, dict(state.get("data") or {})) if with_data else (config, models)

"""Training loop for consensus, Noise2Noise and Noise2Clean on prepared datasets.

* Paper defaults (Wu et al. 2019, sec. 3.2) in :class:`TrainConfig`; runs are configured by a TOML
  file (``examples/ct/train.toml``) with command-line overrides.
* Patches: the same random location is cut from x1, x2, x_est (and the reference); the locations
  of an epoch depend only on ``(seed, epoch)``.
* Device-aware: on CUDA, bf16 autocast, channels-last and (optionally) ``torch.compile``, with the
  whole dataset kept on the GPU when it fits; on CPU, torch uses every core.
* Data: one or more prepared files (or folders of them), loaded or read slice by slice on demand
  (:mod:`tomoconsensus.learn.data`); the patches are the same either way.
* Multi-GPU / multi-node through ``torchrun`` and DistributedDataParallel (:mod:`tomoconsensus.learn.parallel`):
  each rank takes an equal share of every global batch, batch norm uses the global batch, the logged
  losses are the global batch's; rank 0 writes checkpoints and logs. The same script runs single-process.
* Checkpoints (networks, optimiser, RNG state, step) are written atomically every
  ``checkpoint_every_steps`` and, at the end of the current step, on Ctrl-C or SIGTERM;
  ``resume=True`` continues bit-exactly on the same device. A finished run is final; a run folder
  is locked while it trains (:mod:`tomoconsensus.learn.runs`).

Run directory::

    config.toml      the resolved run configuration
    checkpoint.pt    latest training state (load with weights_only=True)
    model.pt         final network weights
    log.jsonl        one JSON object per logged step / validation
    summary.json     final numbers
    run_info.json    what the run was trained on (modality, pixel size, teacher; tomoconsensus.learn.runinfo)

The run configuration is :mod:`tomoconsensus.learn.config`, the checkpoint and model files
:mod:`tomoconsensus.learn.checkpoints`, validation and model selection :mod:`tomoconsensus.learn.selection`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from tomoconsensus import methods
from tomoconsensus.atomic import write_text_atomic
from tomoconsensus.data.lazy import CACHE_MB
from tomoconsensus.data.patches import PatchSampler, StackPatches
from tomoconsensus.data.prepared import PreparedDataset, read_prepared
from tomoconsensus.data.sets import PathsLike, check_disjoint_patients
from tomoconsensus.errors import DiskFull, InputError, Interrupted, RunError
from tomoconsensus.learn.checkpoints import (
    build_models,
    finish_run,
    load_checkpoint,
    require_finite_weights,
    restore_training,
    save_model,
)
from tomoconsensus.learn.config import TrainConfig, config_to_toml, learning_rate_at
from tomoconsensus.learn.data import check_data, data_record, open_training_data, patch_sampler, patch_source
from tomoconsensus.learn.memory import check_training_memory
from tomoconsensus.learn.parallel import init_distributed, mean_over_processes, stop_everywhere, wrap_for_training
from tomoconsensus.learn.runinfo import write_run_info
from tomoconsensus.learn.runs import check_resume, check_run_dir, clear_run, run_lock
from tomoconsensus.learn.selection import selection_key, validate_and_select
from tomoconsensus.learn.state import LoopState, TrainSummary, finite_terms, unique_parameters
from tomoconsensus.learn.trained import autocast_for, resolve_device
from tomoconsensus.progress import progress as progress_bar
from tomoconsensus.signals import SIGNAL_NAMES, StopRequest


def train(config: TrainConfig, train_path: PathsLike, run_dir: str | Path, val_path: PathsLike | None = None,
          resume: bool = False, stop_after_steps: int | None = None, progress: bool = True,
          overwrite: bool = False, initial_weights: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
          data_in_memory: str = "auto", cache_mb: float = CACHE_MB,
          monitor: Mapping[str, str | Path] | None = None) -> TrainSummary:
    """Train ``config.method`` on a prepared dataset; see the module docstring for the run directory.

    Parameters
    ----------
    train_path, val_path : path or list of paths
        Prepared files and folders of them (:mod:`tomoconsensus.data.sets`).
    data_in_memory, cache_mb : str, float
        ``auto``, ``yes`` or ``no`` and the slice cache of data read on demand (:mod:`tomoconsensus.learn.data`).
    stop_after_steps : int, optional
        Leave the loop (with a checkpoint) once this global step is reached, as if interrupted.
    overwrite : bool
        Start an existing run folder again from scratch (its run files are removed).
    initial_weights : mapping network name -> state_dict, optional
        Start these networks from the given weights instead of the seed's random ones (a new run only;
        a resumed run continues from its checkpoint). Distillation starts g from its teacher this way.
    monitor : mapping name -> prepared file, optional
        More held-out files scored like ``val_path`` at the end of every epoch and logged as
        ``log.jsonl`` rows of split ``monitor:NAME``; never used for selection (e.g. the same
        validation patient prepared with another split, to compare criteria).

    The validation file (and every monitor) must not share a patient with the training data.
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume, overwrite)
    device = resolve_device(config.device)
    rank, world, device = init_distributed(device)
    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:  # a limit the user set is kept
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    data, val = open_training_data(config, train_path, val_path, world, data_in_memory)
    sampler = patch_sampler(data, config, train_path)
    check_training_memory(dataclasses.replace(config, batch_size=config.batch_size // world), len(data),
                          *data.x1.shape[-2:], device)
    monitors = _open_monitors(config, monitor or {}, data, train_path)
    record = data_record(data, train_path, val_path)
    checkpoint_path = run_dir / "checkpoint.pt"
    state = _resume_state(checkpoint_path, device, config, record) if resume else None
    if world > 1:  # every rank has checked the folder before rank 0 writes to it
        dist.barrier()
    with run_lock(run_dir) if rank == 0 else contextlib.nullcontext():
        if rank == 0:  # again under the lock: another process may have written the folder since the check
            check_run_dir(run_dir, resume, overwrite)
        if overwrite and rank == 0:
            clear_run(run_dir)
        patches = patch_source(data, sampler, device, world, cache_mb)
        try:
            return _train_locked(config, data, val, sampler, patches, run_dir, state, record, rank, world, device,
                                 stop_after_steps, progress, initial_weights, monitors)
        except Exception as exc:  # nothing partial: a new run that failed before its first checkpoint is removed
            diverged = isinstance(exc, RunError) and not isinstance(exc, DiskFull)  # its log shows how
            if rank == 0 and state is None and not diverged and not checkpoint_path.exists():
                clear_run(run_dir)
            raise
        finally:
            patches.close()


def _open_monitors(config: TrainConfig, monitor: Mapping[str, str | Path], data: PreparedDataset,
                   train_path: PathsLike) -> dict[str, PreparedDataset]:
    """The monitor files, checked like validation data (same networks, modality and units; other patients)."""
    monitors = {name: read_prepared(path) for name, path in monitor.items()}
    for name, mon in monitors.items():
        check_data(mon, config, monitor[name], like=data)
        check_disjoint_patients(train_path, monitor[name])
    return monitors


def _resume_state(checkpoint_path: Path, device: torch.device, config: TrainConfig,
                  record: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint to resume from, refused if its configuration or data differ or its weights are damaged."""
    state = load_checkpoint(checkpoint_path, device, training=True)
    check_resume(checkpoint_path, state, dataclasses.asdict(config), record)
    require_finite_weights(state["models"], checkpoint_path)  # not "diverged": the file itself is damaged
    return state


def _train_locked(config: TrainConfig, data: PreparedDataset, val: PreparedDataset | None, sampler: PatchSampler,
                  patches: StackPatches, run_dir: Path, state: dict[str, Any] | None, record: dict[str, Any],
                  rank: int, world: int, device: torch.device, stop_after_steps: int | None, progress: bool,
                  initial_weights: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
                  monitors: Mapping[str, PreparedDataset] | None = None) -> TrainSummary:
    loop = _start(config, data, val, sampler, patches, run_dir, state, record, rank, world, device, initial_weights)
    loop.monitors = dict(monitors or {})
    start_step, start_time = loop.step, time.perf_counter()
    if state is not None and loop.best_path.exists():
        saved = load_checkpoint(loop.best_path, "cpu")
        loop.best.update(step=saved["step"], loss=saved["selection_loss"], validation=saved["validation"])
    bar = progress_bar(total=loop.total_steps, initial=loop.step, desc=f"train {config.method}", unit="step",
                       every=sampler.batches_per_epoch, enabled=progress and rank == 0)
    loop.log = open(run_dir / "log.jsonl", "a") if rank == 0 else None
    try:
        with StopRequest() as stop:
            _run_steps(loop, val, bar, stop, stop_after_steps)
    finally:
        bar.close()
        if loop.log:
            loop.log.close()
    return _finish(loop, start_step, start_time)


def _start(config: TrainConfig, data: PreparedDataset, val: PreparedDataset | None, sampler: PatchSampler,
           patches: StackPatches, run_dir: Path, state: dict[str, Any] | None, record: dict[str, Any],
           rank: int, world: int, device: torch.device,
           initial_weights: Mapping[str, Mapping[str, torch.Tensor]] | None = None) -> LoopState:
    """Networks, optimiser and step of a new run or of ``state`` (a checkpoint); rank 0 writes the run's
    config.toml and run_info.json."""
    total_steps = sampler.batches_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    models = build_models(config)
    if state is None:
        for name, weights in (initial_weights or {}).items():
            models[name].load_state_dict(weights)
    memory_format = torch.channels_last if (device.type == "cuda" and config.channels_last) else torch.contiguous_format
    for m in models.values():
        m.to(device=device, memory_format=memory_format)
    optimizer = torch.optim.Adam(unique_parameters(models), lr=config.learning_rate)
    step = 0
    if state is not None:
        if state["step"] > total_steps:
            raise InputError(run_dir / "checkpoint.pt", "step", f"at most the run's {total_steps} planned steps",
                             state["step"])
        if (run_dir / "model.pt").exists() and state["step"] != total_steps:  # model.pt is written at the end only
            raise InputError(run_dir / "model.pt", "file", "no model.pt in an unfinished run (its checkpoint.pt is of "
                             f"step {state['step']} of {total_steps}): --overwrite to train it again", "present")
        step = _restore(state, models, optimizer, run_dir, trim_log=rank == 0)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.toml", config_to_toml(config))
        write_run_info(run_dir, data, val)

    train_models = wrap_for_training(models, config.compile, device, world)
    return LoopState(config, sampler, run_dir, record, rank, world, device, models, train_models, optimizer,
                 memory_format, patches, total_steps, step=step, saved_step=step if state is not None else None)


def _restore(state: dict[str, Any], models: Mapping[str, torch.nn.Module], optimizer: torch.optim.Optimizer,
             run_dir: Path, trim_log: bool) -> int:
    """Load a checkpoint's networks, optimiser and RNG state (an exact resume) and, with ``trim_log``, drop the
    lines of log.jsonl written after it (and a last line cut short by a full disk); returns its step."""
    step = restore_training(run_dir / "checkpoint.pt", state, models, optimizer)
    log_path = run_dir / "log.jsonl"
    if trim_log and log_path.exists():  # drop log lines written after the checkpoint
        kept = [ln for ln in log_path.read_text().splitlines() if _log_step_of(ln) <= step]
        write_text_atomic(log_path, "".join(ln + "\n" for ln in kept))
    return step


def _log_step_of(line: str) -> float:
    """The step of a ``log.jsonl`` line; inf for a line that is not a whole JSON object (dropped)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return math.inf
    return record.get("step", 0) if isinstance(record, dict) else math.inf


def _run_steps(loop: LoopState, val: PreparedDataset | None, bar, stop: StopRequest,
               stop_after_steps: int | None) -> None:
    """Train up to the last step: log, validate and select at the end of each epoch, checkpoint, and stop on
    a signal (raising :class:`Interrupted`) or at ``stop_after_steps``."""
    epoch_coords, coords_epoch = None, -1
    while loop.step < loop.total_steps:
        epoch, k = divmod(loop.step, loop.sampler.batches_per_epoch)
        if epoch != coords_epoch:
            epoch_coords, coords_epoch = loop.sampler.epoch_coordinates(epoch), epoch
        upcoming = epoch_coords[k + 1][loop.rank::loop.world] if k + 1 < len(epoch_coords) else None
        terms = _train_step(loop, epoch_coords[k][loop.rank::loop.world], upcoming)
        bar.update(1)
        save_now = _log_step(loop, terms, bar)
        end_of_epoch = loop.step % loop.sampler.batches_per_epoch == 0 or loop.step == loop.total_steps
        if val is not None and end_of_epoch and loop.rank == 0:
            validate_and_select(loop, val)
        if save_now:
            loop.save_checkpoint()
        _stop_if_requested(loop, stop)
        if stop_after_steps is not None and loop.step >= stop_after_steps:
            break


def _train_step(loop: LoopState, coords: torch.Tensor, upcoming: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """One optimiser step on the patches at ``coords`` (this rank's share of the global batch; ``upcoming``:
    the next step's, read ahead where the data are read on demand); returns the loss terms of the global
    batch (averaged over the processes)."""
    config = loop.config
    batch = {name: patches.to(loop.device, non_blocking=True).contiguous(memory_format=loop.memory_format)
             for name, patches in loop.patches(coords, upcoming).items()}
    with autocast_for(loop.device, config.amp):
        terms = methods.objective(config.method, loop.train_models, batch, config.beta_w, config.beta_r,
                                  config.symmetric_n2n)
    loop.optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    for group in loop.optimizer.param_groups:
        group["lr"] = learning_rate_at(config, loop.step, loop.total_steps)
    loop.optimizer.step()
    loop.step += 1
    return mean_over_processes(terms, loop.world)


def _log_step(loop: LoopState, terms: Mapping[str, torch.Tensor], bar) -> bool:
    """Check and log the loss terms when a log line or a checkpoint is due; returns whether a checkpoint is
    due. A diverged state raises :class:`RunError` instead (it is never checkpointed)."""
    step, config = loop.step, loop.config
    log_now = step % config.log_every_steps == 0 or step == loop.total_steps
    save_now = loop.rank == 0 and (step % config.checkpoint_every_steps == 0 or step == loop.total_steps)
    if log_now or save_now:  # never checkpoint a diverged state
        kept = (f"{loop.checkpoint_path} (step {loop.saved_step}, the last finite state)"
                if loop.saved_step is not None else "no checkpoint (it diverged before the first one)")
        loop.terms = finite_terms(terms, step, config, kept)
    if log_now:
        bar.set_postfix({n: f"{v:.3g}" for n, v in loop.terms.items()})
        if loop.log:
            loop.write_log("train", loop.terms)
    return save_now


def _stop_if_requested(loop: LoopState, stop: StopRequest) -> None:
    """After Ctrl-C or SIGTERM in any process: checkpoint this step (rank 0) and raise :class:`Interrupted`."""
    signum = stop_everywhere(stop.signum or 0, loop.world, loop.device)
    if signum:
        if loop.rank == 0 and loop.saved_step != loop.step:
            loop.save_checkpoint()
        raise Interrupted(signum, f"{SIGNAL_NAMES.get(signum, signum)} at step {loop.step} of {loop.total_steps}: "
                          f"checkpoint saved in {loop.checkpoint_path}; continue with --resume")


def _finish(loop: LoopState, start_step: int, start_time: float) -> TrainSummary:
    """Agree on the final networks, checkpoint an unfinished run; a finished one gets model.pt (the selected
    epoch, else the last) and summary.json."""
    config, run_dir, step = loop.config, loop.run_dir, loop.step
    if loop.world > 1:  # DDP syncs buffers before each forward; make the final running stats agree too
        for m in loop.models.values():
            for buffer in m.buffers():
                dist.broadcast(buffer, src=0)
    if loop.rank == 0 and step != loop.total_steps:
        loop.save_checkpoint()
    seconds = time.perf_counter() - start_time
    selected = config.select_best and loop.best_path.exists()
    summary = TrainSummary(run_dir, config.method, step, step / loop.sampler.batches_per_epoch, seconds,
                           (step - start_step) / seconds if seconds > 0 else 0.0, loop.terms,
                           loop.best["validation"] if selected else loop.validation, str(loop.device),
                           loop.best["step"] if selected else step, loop.models,
                           selection_key(config) if selected else "")
    if loop.rank == 0 and step == loop.total_steps:
        finish_run(run_dir, summary, loop.best_path if selected else None,
                   lambda path: save_model(path, step, config, loop.models, {"data": loop.record}))
    return summary


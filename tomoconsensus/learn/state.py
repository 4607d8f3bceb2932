"""What the parts of a training loop share (:class:`LoopState`) and what a call returns (:class:`TrainSummary`).

:mod:`tomoconsensus.learn.loop` runs the steps, :mod:`tomoconsensus.learn.selection` validates and selects;
both read and advance one :class:`LoopState` per process.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch

from tomoconsensus.atomic import is_no_space, no_space
from tomoconsensus.data.patches import PatchSampler, StackPatches
from tomoconsensus.data.prepared import PreparedDataset
from tomoconsensus.errors import DiskFull, RunError
from tomoconsensus.learn.checkpoints import save_checkpoint
from tomoconsensus.learn.config import TrainConfig


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
    #: The key of the ``val`` rows of log.jsonl that selection minimised ("": no validation, the last step).
    selection_criterion: str = ""

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


def unique_parameters(models: Mapping[str, torch.nn.Module]) -> list[torch.nn.Parameter]:
    """Parameters of all networks, each once (tied networks share theirs)."""
    seen: dict[int, torch.nn.Parameter] = {}
    for m in models.values():
        for p in m.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


def finite_terms(terms: Mapping[str, torch.Tensor], step: int, config: TrainConfig, kept: str) -> dict[str, float]:
    """Loss terms as floats; RunError naming the step, what to change and what was kept if one is not finite."""
    values = {n: float(v.detach()) for n, v in terms.items()}
    if not all(math.isfinite(v) for v in values.values()):
        bad = ", ".join(f"{n} {v}" for n, v in values.items() if not math.isfinite(v))
        raise RunError(f"training diverged at step {step} ({bad}): lower the learning rate (now "
                       f"{config.learning_rate:g}, e.g. --learning-rate {config.learning_rate / 10:g}) or check the "
                       f"data, then train again with --overwrite; kept: {kept}")
    return values


@dataclass
class LoopState:
    """What the parts of one process's training loop share: networks, optimiser, position, log and selection.

    ``models`` are the plain networks (saved, validated), ``train_models`` the same networks as trained
    (compiled, DistributedDataParallel). ``saved_step`` is the step of the last checkpoint written (None:
    none yet); ``terms`` the last finite loss terms; ``best`` the selected epoch (step, held-out loss,
    validation values).
    """

    config: TrainConfig
    sampler: PatchSampler
    run_dir: Path
    record: dict[str, Any]
    rank: int
    world: int
    device: torch.device
    models: dict[str, torch.nn.Module]
    train_models: dict[str, torch.nn.Module]
    optimizer: torch.optim.Optimizer
    memory_format: torch.memory_format
    patches: StackPatches  # or CachedPatches: coords (B, 3) -> name -> patches (B, C, p, p)
    total_steps: int
    step: int = 0
    saved_step: int | None = None
    terms: dict[str, float] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=lambda: {"step": 0, "loss": math.inf, "validation": {}})
    log: IO[str] | None = None
    monitors: dict[str, PreparedDataset] = field(default_factory=dict)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    def _disk_full(self, exc: DiskFull) -> DiskFull:
        """``exc`` naming what is kept: the last good checkpoint (atomic writes never replace it by a partial one)."""
        kept = (f"kept: {self.checkpoint_path} (step {self.saved_step}), continue with --resume"
                if self.saved_step is not None else "no checkpoint had been written")
        return DiskFull(f"{exc}; {kept}")

    def save_checkpoint(self) -> None:
        try:
            save_checkpoint(self.checkpoint_path, self.step, self.config, self.models, self.optimizer, self.record)
        except DiskFull as exc:
            raise self._disk_full(exc) from None
        self.saved_step = self.step

    def write_log(self, split: str, values: Mapping[str, float]) -> None:
        """One ``log.jsonl`` line for the current step (rank 0 only holds the log; a line cut short by a full
        disk is dropped on resume)."""
        try:
            self.log.write(json.dumps({"split": split, "step": self.step,
                                       "epoch": self.step / self.sampler.batches_per_epoch, **values}) + "\n")
            self.log.flush()
        except OSError as exc:
            if not is_no_space(exc):
                raise
            raise self._disk_full(no_space(self.run_dir / "log.jsonl", exc)) from None

"""Distillation: one image network g trained to reproduce a trained run (paper sec. 5, deployment).

The consensus output ((f1 + f2)((x1 + x2) / 2) / 2 by default, or the paper's z = (f1(x1) + f2(x2)) / 2)
needs the two half reconstructions, i.e. the raw
data. A scanner delivers only the full reconstruction x_est. As the paper's discussion proposes,
a second network g is trained in a supervised way on the pairs (x_est, z)::

    g* = argmin_g  mean over training patches of ||g(x_est) - z||^2  +  beta_w ||Theta_g||^2,
    z  = teacher(x1, x2, x_est)   (the teacher run's default output, computed once per slice)

so that g(x_est) ~ z needs only x_est. Any finished run can teach: consensus (``mean``), Noise2Noise
(``mean`` = f((x1 + x2) / 2)), Noise2Clean or a distilled run (``full``).

Files (in the distilled run's folder, beside the usual trainer files)::

    teacher_train.h5, teacher_val.h5   copies of the prepared files with the dataset /teacher
                                       (float32, same shape as x_est) and attributes teacher_run_dir,
                                       teacher_method, teacher_variant, teacher_config_sha256, teacher_step;
                                       written atomically, reused on --resume if the teacher is unchanged
    run_info.json                      records the teacher and the training pixel size

Training is the ordinary trainer with ``method = "distill"`` (patches, checkpoints, resume, DDP,
logs, validation loss on the held-out teacher outputs and model selection on it).

**Warm start.** When g has the teacher's architecture (channels, base features, depth), g starts
from the teacher's first network (f1 of a consensus run, f otherwise) instead of random weights.
For the default consensus output (f1 + f2)(x_est)/2 the starting error is then ‖(f1 − f2)(x_est)‖/2,
already small, and the steps go to the remaining difference (measured on the demos: docs/method.md,
'Deployment: distillation'). ``warm_start=False`` (CLI ``--from-scratch``) trains from the seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shutil
from pathlib import Path

import h5py
import torch
import torch.distributed as dist

from tomoconsensus import methods
from tomoconsensus.atomic import atomic_path, same_file
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.denoise import apply_run
from tomoconsensus.errors import InputError
from tomoconsensus.hdf5 import create_hdf5
from tomoconsensus.runs import check_run_dir, run_lock
from tomoconsensus.train import (
    TrainConfig,
    TrainSummary,
    init_distributed,
    load_checkpoint,
    load_trained,
    resolve_device,
    train,
)


@dataclasses.dataclass(frozen=True)
class Teacher:
    """A finished run used as the distillation target (``teacher_*`` attributes of the copies)."""

    run_dir: str
    method: str
    variant: str
    config_sha256: str
    step: int

    def attributes(self) -> dict[str, str | int]:
        return {f"teacher_{k}": v for k, v in dataclasses.asdict(self).items()}


def describe_teacher(run_dir: str | Path) -> Teacher:
    """Identify a finished run (``model.pt`` required: an unfinished run is no teacher)."""
    run_dir = Path(run_dir)
    model = run_dir / "model.pt"
    if not model.exists():
        raise InputError(model, "file", "a finished teacher run (its model.pt)", "not found")
    config_path = run_dir / "config.toml"
    if not config_path.exists():
        raise InputError(config_path, "file", "the teacher run's config.toml", "not found")
    config, _ = load_trained(run_dir)
    step = load_checkpoint(model)["step"]
    return Teacher(str(run_dir.resolve()), config.method, methods.VARIANTS[config.method][0],
                   hashlib.sha256(config_path.read_bytes()).hexdigest(), step)


def _is_current(path: Path, teacher: Teacher, source: Path) -> bool:
    """Whether ``path`` is a teacher copy of ``source`` made by this very teacher."""
    if not path.exists():
        return False
    with h5py.File(path, "r") as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        has_teacher = "teacher" in f
    wanted = {**teacher.attributes(), "teacher_source": str(source.resolve())}
    return has_teacher and all(str(attrs.get(k)) == str(v) for k, v in wanted.items())


def write_teacher_copy(source: str | Path, out: str | Path, teacher: Teacher, device: torch.device,
                       batch_size: int = 4, progress: bool = True) -> Path:
    """Copy a prepared file to ``out`` with the teacher's output as ``/teacher`` (atomic write)."""
    source, out = Path(source), Path(out)
    config, models = load_trained(teacher.run_dir, device)
    data = read_prepared(source)
    if data.channels != config.channels:
        raise InputError(source, "x1", f"{config.channels} channel(s) like the teacher's networks", data.channels)
    z = apply_run(config, models, data, device, teacher.variant, batch_size, progress)
    with atomic_path(out) as tmp:
        shutil.copyfile(source, tmp)
        with create_hdf5(tmp, "a") as f:
            if "teacher" in f:  # the source was itself a teacher copy
                del f["teacher"]
            f.create_dataset("teacher", data=z, chunks=(1,) + z.shape[1:], compression="gzip",
                             compression_opts=4, shuffle=True)
            f.attrs.update({**teacher.attributes(), "teacher_source": str(source.resolve())})
    return out


def distill(config: TrainConfig, teacher_run: str | Path, train_path: str | Path, run_dir: str | Path,
            val_path: str | Path | None = None, resume: bool = False, stop_after_steps: int | None = None,
            progress: bool = True, overwrite: bool = False, warm_start: bool = True) -> TrainSummary:
    """Train ``g: x_est -> teacher output`` with the trainer; returns its summary.

    ``config`` is a run configuration as for :func:`tomoconsensus.train.train` (its ``method`` is
    replaced by ``distill``); its ``channels`` must match the teacher's. Under torchrun, rank 0
    computes the teacher outputs and the other ranks wait for them. ``resume`` and ``overwrite``
    act on ``run_dir`` as for ``train`` (the teacher copies there are rewritten unless resumed).
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and same_file(run_dir, Path(teacher_run)):
        raise InputError("--out", str(run_dir), "a run folder other than the teacher's", "it is --teacher")
    teacher = describe_teacher(teacher_run)
    teacher_config, teacher_models = load_trained(teacher_run)
    if config.channels != teacher_config.channels:
        raise InputError(Path(teacher_run) / "config.toml", "channels",
                         f"{config.channels} channel(s) as in the distillation config", teacher_config.channels)
    initial = _teacher_weights(config, teacher_config, teacher_models) if warm_start else None
    check_run_dir(run_dir, resume, overwrite)  # before the teacher outputs are computed; train checks again
    rank, world, device = init_distributed(resolve_device(config.device))
    sources = {"train": Path(train_path), **({"val": Path(val_path)} if val_path else {})}
    copies = {name: run_dir / f"teacher_{name}.h5" for name in sources}
    with run_lock(run_dir) if rank == 0 else contextlib.nullcontext():  # the teacher copies are the run's too
        written = []
        try:
            if rank == 0:
                for name, source in sources.items():
                    if resume and _is_current(copies[name], teacher, source):
                        print(f"distill: reusing teacher outputs in {copies[name]}")
                        continue
                    written.append(write_teacher_copy(source, copies[name], teacher, device, progress=progress))
                    print(f"distill: wrote {teacher.method} ({teacher.variant}) outputs of {source} to {copies[name]}")
            if world > 1:
                dist.barrier()
            return train(dataclasses.replace(config, method="distill"), copies["train"], run_dir, copies.get("val"),
                         resume=resume, stop_after_steps=stop_after_steps, progress=progress, overwrite=overwrite,
                         initial_weights=initial)
        except BaseException:  # a run that never checkpointed keeps no teacher copies either: nothing partial
            if not (run_dir / "checkpoint.pt").exists():
                for path in written:
                    path.unlink(missing_ok=True)
            raise


def _teacher_weights(config: TrainConfig, teacher_config: TrainConfig,
                     teacher_models: dict[str, torch.nn.Module]) -> dict[str, dict[str, torch.Tensor]] | None:
    """``{"f": the teacher's first network's weights}`` if g has its architecture, else None (and why)."""
    same = (config.base_features, config.depth) == (teacher_config.base_features, teacher_config.depth)
    name = methods.NETWORKS[teacher_config.method][0]
    if not same:
        print(f"distill: g (UNet-{config.base_features} depth {config.depth}) differs from the teacher's "
              f"networks (UNet-{teacher_config.base_features} depth {teacher_config.depth}): random start")
        return None
    print(f"distill: g starts from the teacher's {name}")
    return {"f": {k: v.detach().cpu().clone() for k, v in teacher_models[name].state_dict().items()}}


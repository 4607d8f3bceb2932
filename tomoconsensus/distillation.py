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
                                       teacher_method, teacher_variant, teacher_config_sha256, teacher_step,
                                       teacher_model_sha256, teacher_source; written atomically, reused on
                                       --resume if the teacher is unchanged
    run_info.json                      records the teacher (its folder, config and model.pt SHA-256, step)
                                       and the training pixel size; ``--resume`` with another teacher, or
                                       another --data/--val file, is refused

Refused before any teacher output is written: data of another modality, units or image size than the
teacher was trained on, and a student whose training cannot fit in memory (:mod:`tomoconsensus.learn.memory`).

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
from tomoconsensus.data.lazy import CACHE_MB
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.data.sets import PathsLike, expand_prepared, is_many
from tomoconsensus.denoising import apply_run, check_finite_output, check_like_training
from tomoconsensus.errors import InputError
from tomoconsensus.hdf5 import create_hdf5
from tomoconsensus.learn.checkpoints import load_checkpoint
from tomoconsensus.learn.config import TrainConfig
from tomoconsensus.learn.loop import train
from tomoconsensus.learn.memory import check_training_memory
from tomoconsensus.learn.parallel import init_distributed
from tomoconsensus.learn.runinfo import FILE as RUN_INFO
from tomoconsensus.learn.runinfo import read_run_info
from tomoconsensus.learn.runs import check_run_dir, run_lock
from tomoconsensus.learn.state import TrainSummary
from tomoconsensus.learn.trained import load_trained, resolve_device


@dataclasses.dataclass(frozen=True)
class Teacher:
    """A finished run used as the distillation target (``teacher_*`` attributes of the copies)."""

    run_dir: str
    method: str
    variant: str
    config_sha256: str
    step: int
    model_sha256: str = ""

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
                   hashlib.sha256(config_path.read_bytes()).hexdigest(), step,
                   hashlib.sha256(model.read_bytes()).hexdigest())


def check_same_teacher(run_dir: Path, teacher: Teacher, sources: dict[str, Path]) -> None:
    """On resume: refuse another teacher (or other prepared data) than the run was started with.

    The run records its teacher in ``run_info.json`` (run folder, model.pt and config hashes, step) and
    each teacher copy its source file; a resumed student trained on another teacher's targets would mix
    two targets in one run.
    """
    info_path = run_dir / RUN_INFO
    recorded = read_run_info(run_dir).get("teacher") if info_path.is_file() else None
    if isinstance(recorded, dict):
        keys = [k for k in ("run_dir", "config_sha256", "model_sha256", "step") if recorded.get(k) not in (None, "")]
        current = dataclasses.asdict(teacher)
        if any(str(recorded[k]) != str(current[k]) for k in keys):
            raise InputError(info_path, "teacher", f"--teacher {recorded.get('run_dir')} as this run was started "
                             f"with (model.pt sha256 {str(recorded.get('model_sha256', '?'))[:12]}, step "
                             f"{recorded.get('step')}); a new teacher needs a new run (or --overwrite)",
                             f"{teacher.run_dir} (model.pt sha256 {teacher.model_sha256[:12]}, step {teacher.step})")
    for name, source in sources.items():
        copy = run_dir / f"teacher_{name}.h5"
        if copy.is_file():
            with h5py.File(copy, "r") as f:
                was = f.attrs.get("teacher_source")
            was = was.decode() if isinstance(was, bytes) else was
            if was is not None and str(was) != str(source.resolve()):
                raise InputError(copy, "teacher_source", f"--{'data' if name == 'train' else 'val'} {was} as this "
                                 "run was started with (a new data file needs a new run or --overwrite)",
                                 str(source))


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
    check_finite_output(z, teacher.run_dir)  # NaN targets would train a NaN student
    with atomic_path(out) as tmp:
        shutil.copyfile(source, tmp)
        with create_hdf5(tmp, "a") as f:
            if "teacher" in f:  # the source was itself a teacher copy
                del f["teacher"]
            f.create_dataset("teacher", data=z, chunks=(1,) + z.shape[1:], compression="gzip",
                             compression_opts=4, shuffle=True)
            f.attrs.update({**teacher.attributes(), "teacher_source": str(source.resolve())})
    return out


def distill(config: TrainConfig, teacher_run: str | Path, train_path: PathsLike, run_dir: str | Path,
            val_path: PathsLike | None = None, resume: bool = False, stop_after_steps: int | None = None,
            progress: bool = True, overwrite: bool = False, warm_start: bool = True, data_in_memory: str = "auto",
            cache_mb: float = CACHE_MB) -> TrainSummary:
    """Train ``g: x_est -> teacher output`` with the trainer; returns its summary.

    ``config`` is a run configuration as for :func:`tomoconsensus.learn.loop.train` (its ``method`` is
    replaced by ``distill``); its ``channels`` must match the teacher's. Under torchrun, rank 0
    computes the teacher outputs and the other ranks wait for them. ``resume`` and ``overwrite``
    act on ``run_dir`` as for ``train`` (the teacher copies there are rewritten unless resumed).
    Several prepared files (or folders) get one teacher copy each, in the folders ``teacher_train/`` and
    ``teacher_val/``; ``data_in_memory`` and ``cache_mb`` are passed to the trainer.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and same_file(run_dir, Path(teacher_run)):
        raise InputError(run_dir, "run_dir", "a run folder other than the teacher's",
                         "the teacher's run folder")
    teacher = describe_teacher(teacher_run)
    teacher_config, teacher_models, trained_on = load_trained(teacher_run, with_data=True)
    if config.channels != teacher_config.channels:
        raise InputError(Path(teacher_run) / "config.toml", "channels",
                         f"{config.channels} channel(s) as in the distillation config", teacher_config.channels)
    check_run_dir(run_dir, resume, overwrite)  # before the teacher outputs are computed; train checks again
    rank, world, device = init_distributed(resolve_device(config.device))
    sources = {"train": train_path, **({"val": val_path} if val_path else {})}
    files = {name: expand_prepared(paths, f"{name}_path") for name, paths in sources.items()}
    _check_before_writing(config, teacher_config, trained_on, files, device, world)
    if resume:
        check_same_teacher(run_dir, teacher, {name: f[0] for name, f in files.items() if not is_many(sources[name])})
    initial = _teacher_weights(config, teacher_config, teacher_models) if warm_start else None
    pairs = {name: _copy_names(name, paths, run_dir) for name, paths in sources.items()}
    with run_lock(run_dir) if rank == 0 else contextlib.nullcontext():  # the teacher copies are the run's too
        written: list[Path] = []
        try:
            if rank == 0:
                _write_copies(pairs, teacher, device, resume, progress, written)
            if world > 1:
                dist.barrier()
            return train(dataclasses.replace(config, method="distill"), pairs["train"][1], run_dir,
                         pairs["val"][1] if "val" in pairs else None, resume=resume, stop_after_steps=stop_after_steps,
                         progress=progress, overwrite=overwrite, initial_weights=initial,
                         data_in_memory=data_in_memory, cache_mb=cache_mb)
        except BaseException:  # a run that never checkpointed keeps no teacher copies either: nothing partial
            if not (run_dir / "checkpoint.pt").exists():
                for path in written:
                    path.unlink(missing_ok=True)
                for _, target in pairs.values():  # teacher_NAME/ folders left empty
                    if target.is_dir() and not any(target.iterdir()):
                        target.rmdir()
            raise


def _write_copies(pairs: dict[str, tuple[list[tuple[Path, Path]], Path]], teacher: Teacher, device: torch.device,
                  resume: bool, progress: bool, written: list[Path]) -> None:
    """Write the teacher copies (rank 0), reusing current ones on resume; each new copy is appended to
    ``written`` as soon as it exists (removed again if the distillation then fails)."""
    for listed, target in pairs.values():  # a copy left from another set of files would be read too
        for stale in set(target.glob("*.h5") if target.is_dir() else ()) - {c for _, c in listed}:
            stale.unlink()
    for source, copy in (pair for listed, _ in pairs.values() for pair in listed):
        if resume and _is_current(copy, teacher, source):
            print(f"distill: reusing teacher outputs in {copy}")
            continue
        copy.parent.mkdir(parents=True, exist_ok=True)
        written.append(write_teacher_copy(source, copy, teacher, device, progress=progress))
        print(f"distill: wrote {teacher.method} ({teacher.variant}) outputs of {source} to {copy}")


def _copy_names(name: str, paths: PathsLike, run_dir: Path) -> tuple[list[tuple[Path, Path]], Path]:
    """(source, teacher copy) pairs of ``paths`` and what the trainer reads: ``teacher_NAME.h5`` for one
    file; for several, the folder ``teacher_NAME/`` with one copy per file, numbered in file order."""
    files = expand_prepared(paths, f"{name}_path")
    if not is_many(paths):
        return [(files[0], run_dir / f"teacher_{name}.h5")], run_dir / f"teacher_{name}.h5"
    folder = run_dir / f"teacher_{name}"
    return [(f, folder / f"{i:05d}_{f.name}") for i, f in enumerate(files)], folder


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



def _check_before_writing(config: TrainConfig, teacher_config: TrainConfig, trained_on: dict,
                          files: dict[str, list[Path]], device: torch.device, world: int) -> None:
    """Refuse, before any teacher output is written: data of another modality, units or image size than the
    teacher was trained on (its outputs there would be wrong targets), and a student that cannot fit in memory.
    The first file of each group is checked (the others must be of its kind: :mod:`tomoconsensus.data.sets`)."""
    for paths in files.values():
        check_like_training(read_prepared(paths[0]), teacher_config.channels, trained_on)
    shapes = []
    for path in files["train"]:
        with h5py.File(path, "r") as f:
            shapes.append(f["x1"].shape)
    student = dataclasses.replace(config, method="distill", batch_size=config.batch_size // world)
    check_training_memory(student, sum(s[0] for s in shapes), *shapes[0][-2:], device)

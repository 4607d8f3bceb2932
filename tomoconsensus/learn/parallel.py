"""The networks trained by several processes (torchrun): process group, DDP wrapping, global batch norm.

Under ``torchrun`` (one machine or several: ``--nnodes N --rdzv-backend c10d``) every process takes an
equal share of each global batch (B / world patches), DistributedDataParallel averages the gradients,
and the batch statistics of every BatchNorm layer are taken over the global batch, so that the
processes together compute what one process computes on the whole batch:

* CUDA (NCCL): :class:`torch.nn.SyncBatchNorm`;
* CPU (gloo): :class:`GlobalBatchNorm2d`, which sums the per-channel count, sum and sum of squares
  over the processes with a differentiable all-reduce (``torch.distributed.nn``)::

      mean = S1 / n,  var = S2 / n - mean**2,  y = (x - mean) / sqrt(var + eps) * weight + bias

  with n, S1, S2 summed over all processes (running variance unbiased, n / (n - 1), as BatchNorm2d).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.distributed as dist
from torch import nn


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the torchrun process group if launched by torchrun; returns (rank, world, device).

    The backend is NCCL on CUDA and gloo on the CPU; the rendezvous (``MASTER_ADDR``/``MASTER_PORT`` or
    torchrun's c10d store) comes from torchrun's environment.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), world, device


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the batch of all processes (CPU / gloo).

    Same parameters, buffers and state_dict as :class:`torch.nn.BatchNorm2d`; in eval mode, or without
    a process group, it is BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        n_local = x.new_tensor([x.shape[0] * x.shape[2] * x.shape[3]], dtype=x.dtype)
        stats = all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)), n_local]))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = stats[c:2 * c] / n - mean * mean
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)), alpha=m)
        scale = torch.rsqrt(var + self.eps)
        y = (x - mean[None, :, None, None]) * scale[None, :, None, None]
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def convert_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d below ``module`` (in place) by a :class:`GlobalBatchNorm2d` sharing its
    parameters and buffers; returns ``module`` (or the replacement, if it is one)."""
    if type(module) is nn.BatchNorm2d:
        new = GlobalBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                module.track_running_stats)
        new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_global_batchnorm(child))
    return module


def wrap_for_training(models: Mapping[str, nn.Module], compile_: bool, device: torch.device,
                      world: int) -> dict[str, nn.Module]:
    """Apply torch.compile and DistributedDataParallel, once per distinct network (tied ones share), with
    batch statistics over the global batch (SyncBatchNorm on CUDA, :class:`GlobalBatchNorm2d` on the CPU)."""
    wrapped: dict[int, nn.Module] = {}
    for m in models.values():
        if id(m) in wrapped:
            continue
        if world > 1:  # in place: the plain networks (saved, validated) hold the converted layers too
            if device.type == "cuda":
                nn.SyncBatchNorm.convert_sync_batchnorm(m)
            else:
                convert_global_batchnorm(m)
        w = torch.compile(m) if compile_ else m
        if world > 1:
            device_ids = [device.index] if device.type == "cuda" else None
            w = nn.parallel.DistributedDataParallel(w, device_ids=device_ids)
        wrapped[id(m)] = w
    return {k: wrapped[id(m)] for k, m in models.items()}


def mean_over_processes(terms: Mapping[str, torch.Tensor], world: int) -> dict[str, torch.Tensor]:
    """Loss terms (scalars) averaged over the processes: the global batch's terms (equal shares)."""
    if world <= 1:
        return dict(terms)
    names = list(terms)
    stacked = torch.stack([terms[n].detach().float() for n in names])
    dist.all_reduce(stacked)
    return {n: v / world for n, v in zip(names, stacked, strict=True)}


def stop_everywhere(signum: int, world: int, device: torch.device) -> int:
    """The signal number if any process received Ctrl-C/SIGTERM (all ranks stop at the same step), else 0."""
    if world > 1:
        flag = torch.tensor([signum], device=device if device.type == "cuda" else "cpu")
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        signum = int(flag.item())
    return signum

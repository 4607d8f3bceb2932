"""Memory a training run needs, estimated before anything is allocated, and the refusal when it cannot fit.

A run configured with ``base_features = 1000000`` (7.6e15 parameters per UNet of depth 4: 30 PB of
float32 weights) would die in the allocator (or the kernel's OOM killer), possibly after minutes of
work; the estimate refuses it in one line first. It is a
*lower bound*, so no run that fits is refused:

* parameters P per network (exact, :func:`tomoconsensus.nn.unet.parameter_count`), each with its
  gradient and Adam's two moments: 16 P bytes (float32) per distinct network;
* activations kept for the backward pass: per UNet level l (features F 2**l on (p / 2**l)^2 pixels
  of a p x p patch), at least the 4 outputs of the encoder's two (conv, batch norm) pairs and 4 of the
  decoder's, for a batch of B patches: 8 B sum_l F 2**l (p / 2**l)^2 elements per network, 2 bytes each
  with bf16 autocast on CUDA, 4 otherwise;
* the epoch's patch corners (3 int64 per patch, on the CPU). The image stacks are not counted: they
  are in memory already when the estimate is made (and stay on the CPU where the GPU is short).

Available memory: ``MemAvailable`` of ``/proc/meminfo`` on the CPU, the free memory
(``torch.cuda.mem_get_info``) on a GPU; where neither can be read, nothing is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from tomoconsensus import methods
from tomoconsensus.errors import InputError
from tomoconsensus.learn.config import TrainConfig
from tomoconsensus.nn.unet import parameter_count

GIB = 2**30


@dataclass(frozen=True)
class TrainingMemory:
    """Lower bounds in bytes: on the training device (weights, activations) and on the host (patch corners)."""

    parameters: int
    networks: int
    weight_bytes: int
    activation_bytes: int
    host_bytes: int

    @property
    def device_bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes


def estimate_training_memory(config: TrainConfig, n_slices: int, height: int, width: int,
                             bf16: bool = False) -> TrainingMemory:
    """Lower bound of the memory of training ``config`` on ``n_slices`` images of height x width pixels."""
    networks = 1 if (config.method == "consensus" and config.tie_networks) else len(methods.NETWORKS[config.method])
    params = parameter_count(config.channels, config.base_features, config.depth)
    p = min(config.patch_size, height, width)
    elements = sum(config.base_features * 2**level * max(1, p // 2**level) ** 2 for level in range(config.depth + 1))
    activation = networks * 8 * config.batch_size * elements * (2 if bf16 else 4)
    host = 3 * 8 * n_slices * config.patches_per_slice
    return TrainingMemory(params, networks, 16 * params * networks, activation, host)


def available_bytes(device) -> int | None:
    """Free memory of a torch device in bytes (:func:`tomoconsensus.data.lazy.available_memory_bytes`;
    None where it cannot be read)."""
    from tomoconsensus.data.lazy import available_memory_bytes

    try:
        return available_memory_bytes(getattr(device, "type", str(device)), device)
    except (OSError, ValueError):
        return None


def check_training_memory(config: TrainConfig, n_slices: int, height: int, width: int, device,
                          source: str = "run config") -> TrainingMemory:
    """Refuse (InputError, one line with the estimate) a run whose lower-bound memory exceeds what is free."""
    is_cuda = getattr(device, "type", "") == "cuda"
    need = estimate_training_memory(config, n_slices, height, width, bf16=is_cuda and config.amp != "off")
    device_free = available_bytes(device)
    host_free = available_bytes("cpu") if is_cuda else device_free
    host_need = need.host_bytes + (0 if is_cuda else need.device_bytes)
    for where, needed, free in (("cuda", need.device_bytes, device_free if is_cuda else None),
                                ("cpu", host_need, host_free)):
        if free is not None and needed > free:
            raise InputError(source, "base_features, batch_size, patch_size, patches_per_slice",
                             f"a run that fits the {free / GIB:.3g} GiB free on {where} (lower them)",
                             f"an estimated {needed / GIB:.3g} GiB at least: {need.networks} network(s) of "
                             f"{need.parameters:,} parameters with gradients and Adam state "
                             f"{need.weight_bytes / GIB:.3g} GiB, activations of a batch "
                             f"{need.activation_bytes / GIB:.3g} GiB, patch corners {need.host_bytes / GIB:.3g} GiB")
    return need

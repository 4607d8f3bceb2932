"""Benchmark: one consensus training step (two UNet-32 networks, batch 40, 96^2 patches).

Measures steps/s and samples/s on the CPU and, where CUDA is present, on the GPU in fp32, with
bf16 autocast, with channels-last and with torch.compile; counts the FLOPs of one step with
torch's FLOP counter and reports the fraction of the device's peak reached.
Writes benchmarks/results/train_step.json.

    .venv/bin/python benchmarks/train_step.py [--cpu-steps 3] [--gpu-steps 50] [--batch 40]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from tomoconsensus import losses
from tomoconsensus.nn.unet import UNet

from common import write_result

#: Dense bf16 tensor-core peak (no sparsity), FLOP/s, for the fraction-of-peak figure.
GPU_PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def make_step(device: torch.device, amp: bool, channels_last: bool, compile_: bool, batch: int):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    f1, f2 = (UNet(1, 32, 4).to(device, memory_format=fmt) for _ in range(2))
    opt = torch.optim.Adam(list(f1.parameters()) + list(f2.parameters()), lr=1e-4)
    m1, m2 = (torch.compile(m) for m in (f1, f2)) if compile_ else (f1, f2)
    x1, x2, xe = (torch.randn(batch, 1, 96, 96, device=device).contiguous(memory_format=fmt) for _ in range(3))

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = losses.consensus(m1, m2, x1, x2, xe, 5e-6, 0.5)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def flops_per_step(batch: int) -> int:
    step = make_step(torch.device("cpu"), False, False, False, batch)
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def time_steps(step, n: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / n


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu-steps", type=int, default=3)
    parser.add_argument("--gpu-steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    flops = flops_per_step(args.batch)
    result = {"step": f"consensus, 2 x UNet-32 depth 4, batch {args.batch}, 96x96", "flops_per_step": flops,
              "cpu": platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads(), "runs": []}
    cpu = torch.device("cpu")
    sec = time_steps(make_step(cpu, False, False, False, args.batch), args.cpu_steps, 1, cpu)
    result["runs"].append({"device": "cpu", "variant": "fp32", "ms_per_step": 1e3 * sec, "steps_per_s": 1 / sec,
                           "samples_per_s": args.batch / sec, "tflops": flops / sec / 1e12})
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in GPU_PEAK_BF16.items() if k in name), None)
        result["gpu"] = name
        for variant, amp, cl, comp in (("fp32", False, False, False), ("bf16", True, False, False),
                                       ("bf16+channels_last", True, True, False),
                                       ("bf16+channels_last+compile", True, True, True)):
            sec = time_steps(make_step(gpu, amp, cl, comp, args.batch), args.gpu_steps, 10 if comp else 3, gpu)
            run = {"device": "cuda", "variant": variant, "ms_per_step": 1e3 * sec, "steps_per_s": 1 / sec,
                   "samples_per_s": args.batch / sec, "tflops": flops / sec / 1e12}
            if peak and amp:
                run["fraction_of_bf16_peak"] = flops / sec / peak
            result["runs"].append(run)
        best = min(r["ms_per_step"] for r in result["runs"] if r["device"] == "cuda")
        result["paper_scale_ct_40000_steps_min"] = best * 40000 / 1e3 / 60
    write_result("train_step.json", result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

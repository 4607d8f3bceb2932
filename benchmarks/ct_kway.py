"""K-way view splits for consensus training on unseen CT patients (issue 13), measured.

The sinogram's views are split into K interleaved subsets (views k, k+K, ...), each reconstructed
by FBP: x_1 .. x_K, unbiased with independent noise (K/2 times the variance of a half). With K
networks and outputs y_k, the identity ``||mean_k a_k||^2 = 1/K sum_k ||a_k||^2 - 1/K^2 sum_{j<k}
||a_j - a_k||^2`` (a_k = y_k - x, the unknown image; exact, no independence needed) gives the
K-way consensus loss

    L_K = 1/K sum_k ||y_k - t_k||^2 - 1/K^2 sum_{j<k} ||y_j - y_k||^2  (+ beta_w sum ||Theta_k||^2),

whose expectation is ``E||z - x||^2`` + const for ``z = mean_k y_k`` whenever each target t_k is
independent of the input of network k. K = 2 is the paper's Eq. 8. Two ways to pair them:

* ``subset``: y_k = f_k(x_k), t_k = mean of the other subsets (each network sees 1/K of the views);
* ``complement`` (Noise2Inverse-style, Hendriksen et al. 2020): y_k = f_k(mean of the other
  subsets), t_k = x_k (each network sees (K-1)/K of the views: less noise in its input).

Output: z = mean_k y_k, and the variant that applies every network to x_est (all views).

Same data and protocol as ``tomoconsensus demo ct`` (demo grid, quarter dose, 220 training slices of
11 patients, validation patient LIDC-IDRI-0001, the 12 COVID-19-NY-SBU test slices, UNet-16 depth 3,
64^2 patches, batch 16, Adam 3e-4, 12 epochs of 2 patches per slice, beta_w 5e-6, beta_r 0: the demo's
protocol when this was recorded, before it chose 32^2 patches and 24 epochs); the
epoch is chosen by L_K on the held-out noisy validation slices (no reference). This is a
measurement loop, not the product's trainer; its K = 2 run is the control for the K = 4 runs.

Writes benchmarks/results/ct_kway.json. Run: .venv/bin/python benchmarks/ct_kway.py [--runs NAME ...]
A K = 4 run takes about 5 min on 2 idle CPU cores.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time

import numpy as np
import torch

from tomoconsensus.ct.demo import ct_split
from tomoconsensus.ct.modality import CTModality
from tomoconsensus.ct.noise import hu_to_mu, mu_to_hu
from tomoconsensus.ct.pipeline import fan_beam_geometry
from tomoconsensus.ct.sources import simulated_slices
from tomoconsensus.data.patches import PatchSampler, extract_patches
from tomoconsensus.losses import mse, weight_penalty
from tomoconsensus.nn.unet import UNet
from tomoconsensus.study.runner import demo_protocol
from tomoconsensus.study.spec import TrainingProtocol
from tomoconsensus.tomo.curved import fbp_operator, forward_projector
from tomoconsensus.tomo.grid import to_geometry_grid
from tomoconsensus.tomo.presentation import hu_metrics

from common import RESULTS, write_result

#: name -> (K, pairing)
RUNS = {"k2": (2, "subset"), "k4_subset": (4, "subset"), "k4_complement": (4, "complement")}
K_DATA = 4  # subsets reconstructed once; K = 2 halves are means of two of them (FBP is linear)


def subset_stack(stack, geom, dose: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """FBPs of the K_DATA interleaved view subsets (S, K_DATA, H, W) and references (S, H, W), HU/1000."""
    modality = CTModality(geom)
    views = [np.arange(k, geom.n_views, K_DATA) for k in range(K_DATA)]
    ops = [fbp_operator(geom, v) for v in views]
    subsets, refs = [], []
    for sl in simulated_slices(stack, geom, dose, seed):
        sino = sl.measurement
        subsets.append(np.stack([modality.to_units(op(sino[v]))[0] for op, v in zip(ops, views, strict=True)]))
        refs.append(sl.reference[0])
    return torch.from_numpy(np.stack(subsets)), torch.from_numpy(np.stack(refs))


def view_aliasing(stack, geom) -> dict[str, float]:
    """RMS (HU) in the body (> -500 HU) of noiseless subset FBP minus noiseless full FBP, per K."""
    mu_w, full_op = geom.protocol.mu_water_per_mm, fbp_operator(geom)
    subsets = {k: [(v, fbp_operator(geom, v)) for v in (np.arange(j, geom.n_views, k) for j in range(k))]
               for k in (2, 4)}  # operators built once, not per slice
    squares: dict[int, list[float]] = {k: [] for k in subsets}
    with forward_projector(geom, kind="strip") as proj:
        for hu_in, pixel in zip(stack.hu, stack.pixel_spacing_mm, strict=True):
            hu = to_geometry_grid(hu_in, float(pixel), geom)
            sino = proj.forward(hu_to_mu(hu, mu_w))
            full, body = mu_to_hu(full_op(sino).numpy(), mu_w), hu > -500
            for k, ops in subsets.items():
                for v, op in ops:
                    sub = mu_to_hu(op(sino[v]).numpy(), mu_w)
                    squares[k].append(float(np.mean((sub - full)[body] ** 2)))
    return {f"K{k} ({geom.n_views // k} views)": float(np.sqrt(np.mean(v))) for k, v in squares.items()}


def pairs(subsets: torch.Tensor, k: int, pairing: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), each (S, K, H, W), of a K-way split built from the K_DATA subsets."""
    parts = subsets if k == K_DATA else torch.stack([subsets[:, j::k].mean(1) for j in range(k)], 1)
    others = (parts.sum(1, keepdim=True) - parts) / (k - 1)
    return (parts, others) if pairing == "subset" else (others, parts)


def kway_loss(nets, inputs, targets, beta_w: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_K with the weight penalty, L_K alone) for inputs/targets (B, K, H, W)."""
    k = len(nets)
    ys = [net(inputs[:, j:j + 1]) for j, net in enumerate(nets)]
    data = sum(mse(y, targets[:, j:j + 1]) for j, y in enumerate(ys)) / k
    data = data - sum(mse(ys[i], ys[j]) for i in range(k) for j in range(i + 1, k)) / k**2
    return data + beta_w * weight_penalty(*nets), data.detach()


@torch.no_grad()
def outputs(nets, inputs: torch.Tensor, x_est: torch.Tensor) -> dict[str, torch.Tensor]:
    """z = mean_k f_k(input_k) and mean_k f_k(x_est), (S, H, W)."""
    z = torch.stack([net(inputs[:, j:j + 1])[:, 0] for j, net in enumerate(nets)]).mean(0)
    full = torch.stack([net(x_est[:, None])[:, 0] for net in nets]).mean(0)
    return {"z": z, "on_x_est": full}


def train_run(k: int, pairing: str, data: dict, t: TrainingProtocol, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    nets = [UNet(1, t.base_features, t.depth) for _ in range(k)]
    opt = torch.optim.Adam([p for n in nets for p in n.parameters()], lr=t.learning_rate)
    x_in, x_tg = pairs(data["train"][0], k, pairing)
    v_in, v_tg = pairs(data["val"][0], k, pairing)
    sampler = PatchSampler(len(x_in), x_in.shape[-2], x_in.shape[-1], t.patch_size, t.patches_per_slice,
                           t.batch_size, seed)
    best, history, start = (float("inf"), None, -1), [], time.process_time()
    for epoch in range(t.epochs):
        for coords in sampler.epoch_coordinates(epoch):
            total, _ = kway_loss(nets, extract_patches(x_in, coords, sampler.patch_size),
                                 extract_patches(x_tg, coords, sampler.patch_size), t.beta_w)
            opt.zero_grad()
            total.backward()
            opt.step()
        with torch.no_grad():
            val = float(kway_loss(nets, v_in, v_tg, 0.0)[1])
        history.append(val)
        if val < best[0]:
            best = (val, copy.deepcopy([n.state_dict() for n in nets]), epoch)
    for net, state in zip(nets, best[1], strict=True):
        net.load_state_dict(state)
    return {"nets": nets, "val_loss": history, "best_epoch": best[2], "train_cpu_s": time.process_time() - start,
            "steps": t.epochs * sampler.batches_per_epoch}


def measure(nets, k: int, pairing: str, test: tuple[torch.Tensor, torch.Tensor]) -> dict:
    subsets, ref = test
    inputs, _ = pairs(subsets, k, pairing)
    x_est = subsets.mean(1)
    images = {"fbp": x_est, **outputs(nets, inputs, x_est)}
    out = {}
    for name, img in images.items():
        per = [hu_metrics(1000 * a.numpy(), 1000 * r.numpy()) for a, r in zip(img, ref, strict=True)]
        out[name] = {"rmse_hu": float(np.sqrt(np.mean([m["rmse_hu"] ** 2 for m in per]))),
                     "ssim": float(np.mean([m["ssim"] for m in per]))}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS),
                        help="runs to train (none: only the view-aliasing measurement)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    protocol = demo_protocol("ct")
    # the record's training values: the CT demo's, with the 64^2 patches and 12 constant epochs it had then
    training = dataclasses.replace(protocol.training, patch_size=64, epochs=12, lr_schedule="constant")
    geom = fan_beam_geometry(protocol.data.geometry)
    data = {name: subset_stack(stack, geom, protocol.data.dose_fraction, args.seed + offset)
            for name, stack, offset in ct_split(protocol.data)} if args.runs else {}
    path = RESULTS / "ct_kway.json"
    record = json.loads(path.read_text()) if path.exists() else {"protocol": __doc__.split("\n\n")[3], "runs": {}}
    record["view_aliasing_rms_hu_test_slices"] = view_aliasing(ct_split(protocol.data)[2][1], geom)
    write_result("ct_kway.json", record)
    print("view aliasing, RMS in the body (HU):", record["view_aliasing_rms_hu_test_slices"])
    for name in args.runs:
        k, pairing = RUNS[name]
        run = train_run(k, pairing, data, training, args.seed)
        result = {"k": k, "pairing": pairing, "seed": args.seed, "steps": run["steps"],
                  "best_epoch": run["best_epoch"], "val_loss": run["val_loss"],
                  "train_cpu_s": run["train_cpu_s"], "test": measure(run["nets"], k, pairing, data["test"])}
        record["runs"][f"{name}_s{args.seed}"] = result
        write_result("ct_kway.json", record)
        print(name, json.dumps(result["test"]), flush=True)
    return record


if __name__ == "__main__":
    main()

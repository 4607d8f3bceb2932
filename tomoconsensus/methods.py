"""The four training methods: which networks they train, their objective, and their output.

========== ======== ================================== ====================================
method     networks objective (``tomoconsensus.losses``) output (default variant first)
========== ======== ================================== ====================================
consensus  f1, f2   consensus (Eq. 8-12)               ``mean``: (f1(m) + f2(m)) / 2, m = (x1 + x2) / 2;
                                                        ``z``: (f1(x1) + f2(x2)) / 2 (Eq. 9);
                                                        ``f1``: f1(x1); ``full``: (f1 + f2)(x_est) / 2
noise2noise f       noise2noise (Eq. 2)                ``mean``: f((x1 + x2) / 2); ``full``: f(x_est);
                                                        ``f1``: f(x1)
noise2clean f       noise2clean (Eq. 1), x_est -> ref  ``full``: f(x_est)
distill    f        distillation, x_est -> teacher     ``full``: f(x_est)
========== ======== ================================== ====================================

``distill`` is the deployment step of the paper's discussion (sec. 5): one network g trained, in a
supervised way, to map x_est to a trained run's default output (the ``teacher`` dataset that
``tomoconsensus distill`` adds to a copy of the prepared file; see :mod:`tomoconsensus.distillation`).

Both self-supervised methods are applied by default to m = (x1 + x2) / 2, the *linear* reconstruction of all the data,
which has the kind of noise the network was trained on (half its variance). In CT this is the FBP of
all views, i.e. x_est (equal to 1e-6). In MR it is the weighted zero-filling of the 4x data, while
x_est there is SENSE, whose artefacts the network has never seen (``full`` still applies it to x_est).
For consensus the paper's output is z (Eq. 9), each network on its own half, which has twice the
noise variance of m; applied to m, the pair denoises the reconstruction of all the data, as
Noise2Noise (and Noise2Inverse) do. On unseen CT patients this output has the lower error
(docs/method.md, 'Consensus on unseen patients'); ``--variant z`` gives the paper's.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from tomoconsensus import losses
from tomoconsensus.choices import MEAN_INPUT_X_EST, METHODS, VARIANTS
from tomoconsensus.errors import InputError

NETWORKS = {"consensus": ("f1", "f2"), "noise2noise": ("f",), "noise2clean": ("f",), "distill": ("f",)}
#: The dataset a supervised method's target comes from (the self-supervised methods need none).
TARGETS = {"noise2clean": "reference", "distill": "teacher"}
#: The variant that takes one image (x_est, or a scanner's image) as its only input. Consensus is left
#: out on purpose: its ``full`` variant exists, but a deployed consensus run is distilled first.
IMAGE_VARIANTS = {"noise2noise": "full", "noise2clean": "full", "distill": "full"}
__all__ = ["IMAGE_VARIANTS", "METHODS", "NETWORKS", "TARGETS", "VARIANTS", "check_method", "check_variant",
           "has_target", "objective", "output"]


def check_method(method: str) -> None:
    if method not in METHODS:
        raise InputError("--method", "method", f"one of {', '.join(METHODS)}", method)


def check_variant(method: str, variant: str | None) -> str:
    """The variant to use (the method's default for None); InputError for one the method lacks."""
    check_method(method)
    variant = variant or VARIANTS[method][0]
    if variant not in VARIANTS[method]:
        raise InputError("--variant", "variant", f"one of {', '.join(VARIANTS[method])} for a {method} run", variant)
    return variant


def objective(method: str, models: Mapping[str, nn.Module], batch: Mapping[str, torch.Tensor],
              beta_w: float, beta_r: float, symmetric_n2n: bool = False) -> dict[str, torch.Tensor]:
    """Loss terms of one batch (``x1``, ``x2``, ``x_est`` and optionally ``reference``)."""
    if method == "consensus":
        return losses.consensus(models["f1"], models["f2"], batch["x1"], batch["x2"], batch["x_est"], beta_w, beta_r)
    if method == "noise2noise":
        return losses.noise2noise(models["f"], batch["x1"], batch["x2"], beta_w, symmetric_n2n)
    if method == "distill":
        return losses.distillation(models["f"], batch["x_est"], batch.get("teacher"), beta_w)
    check_method(method)
    return losses.noise2clean(models["f"], batch["x_est"], batch.get("reference"), beta_w)


def has_target(method: str, available) -> bool:
    """Whether the data (names in ``available``) hold what ``method``'s objective needs."""
    return TARGETS.get(method) is None or TARGETS[method] in available


def mean_is_x_est(attrs: Mapping) -> bool:
    """Whether a prepared file's ``mean`` variant takes x_est (its attribute ``mean_input``)."""
    return str(attrs.get("mean_input", "")) == MEAN_INPUT_X_EST


def output(method: str, models: Mapping[str, nn.Module], x1: torch.Tensor, x2: torch.Tensor,
           x_est: torch.Tensor, variant: str | None = None, mean_from_x_est: bool = False) -> torch.Tensor:
    """Denoised images (B, C, H, W) of a trained method; ``variant`` defaults to the first listed.

    ``mean`` applies the networks to the linear reconstruction of all the data: (x1 + x2) / 2, or x_est
    with ``mean_from_x_est`` (files whose halves were logged apart, :func:`mean_is_x_est`).
    """
    variant = check_variant(method, variant)
    if method == "consensus":
        if variant in ("mean", "full"):
            m = (x_est if mean_from_x_est else 0.5 * (x1 + x2)) if variant == "mean" else x_est
            return 0.5 * (models["f1"](m) + models["f2"](m))
        y1 = models["f1"](x1)
        return y1 if variant == "f1" else 0.5 * (y1 + models["f2"](x2))
    if variant == "mean":
        return models["f"](x_est if mean_from_x_est else 0.5 * (x1 + x2))
    return models["f"](x1 if variant == "f1" else x_est)


def output_on_halves_error(method: str, models: Mapping[str, nn.Module], x1: torch.Tensor,
                           x2: torch.Tensor) -> torch.Tensor | None:
    """Held-out error of the method's image operator g (consensus: (f1 + f2) / 2, the ``mean`` output's;
    Noise2Noise: f), applied to each half and scored against the other half:
    ``1/2 ||g(x1) - x2||^2 + 1/2 ||g(x2) - x1||^2`` (mean over pixels). With independent halves this is
    ``E||g(x_k) - x||^2 + Var(noise of a half)``: the error of the output the toolkit deploys, at the
    noise level of one half, estimated without a reference. None for the supervised methods."""
    if method == "consensus":
        def g(x):
            return 0.5 * (models["f1"](x) + models["f2"](x))
    elif method == "noise2noise":
        g = models["f"]
    else:
        return None
    return 0.5 * losses.mse(g(x1), x2) + 0.5 * losses.mse(g(x2), x1)


def half_outputs(method: str, models: Mapping[str, nn.Module], x1: torch.Tensor,
                 x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The output from each half's data alone (for choices made on held-out raw data, e.g. MR data
    consistency): consensus f1(x1), f2(x2); one-network methods f(x1), f(x2) (for methods trained on
    x_est this is an input they were not trained on)."""
    if method == "consensus":
        return models["f1"](x1), models["f2"](x2)
    check_method(method)
    return models["f"](x1), models["f"](x2)

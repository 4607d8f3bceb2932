"""Training objectives of Wu et al. 2019: consensus (Eq. 8-12), Noise2Noise (Eq. 2), Noise2Clean (Eq. 1),
and the distillation of a trained run into one image network (sec. 5).

Conventions
-----------
* ``||a - b||^2`` of the paper is implemented as the mean squared error over pixels, channels and
  the batch (the paper's 1/N sum over samples, with the per-image norm normalised by the number of
  pixels), so the beta values do not depend on the patch size.
* The weight penalty ``||Theta||^2`` is the plain sum of squares of the convolution kernels.
  Biases and batch-norm parameters are excluded (they do not control the mapping's smoothness,
  and this is how Keras/TF kernel regularisers, which the original code used, behave).

Every objective returns a dict of named scalar tensors with the total under ``"total"``.
"""

from __future__ import annotations

import torch
from torch import nn


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference, computed in float32 (safe under autocast)."""
    return torch.mean((a.float() - b.float()) ** 2)


def weight_penalty(*models: nn.Module) -> torch.Tensor:
    """Sum of squared convolution kernels (parameters with more than one dimension), Eq. 10."""
    squares = [p.float().pow(2).sum() for m in models for p in m.parameters() if p.ndim > 1]
    return torch.stack(squares).sum()


def consensus_terms(y1: torch.Tensor, y2: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor,
                    disagreement: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 8: 1/2 ||y1 - x2||^2 + 1/2 ||y2 - x1||^2 - 1/4 ||y1 - y2||^2, with y_i = f_i(x_i).

    ``disagreement`` may pass a precomputed ||y1 - y2||^2.
    """
    if disagreement is None:
        disagreement = mse(y1, y2)
    return 0.5 * mse(y1, x2) + 0.5 * mse(y2, x1) - 0.25 * disagreement


def consensus(f1: nn.Module, f2: nn.Module, x1: torch.Tensor, x2: torch.Tensor, x_est: torch.Tensor,
              beta_w: float, beta_r: float) -> dict[str, torch.Tensor]:
    """Consensus loss L = L_n + beta_w L_w + beta_r L_r (Eq. 12).

    Parameters
    ----------
    f1, f2 : nn.Module
        The two networks (Theta_1, Theta_2).
    x1, x2 : Tensor (B, C, H, W)
        Reconstructions of the two halves of the data.
    x_est : Tensor (B, C, H, W)
        Estimate from all data (FBP for CT, SENSE for MR), for the consistency term Eq. 11.

    Notes
    -----
    In expectation L_n depends on the networks only through z: the pair (y1 + g, y2 - g) has the
    same expected loss for any image-dependent g. With few training images the networks can drift
    along this flat direction, fitting the training noise with opposite signs so that it cancels in
    z on training data but not on new data. The weight decay beta_w is what removes the drift (the
    minimum-norm solution has g = 0). The returned ``disagreement`` = ||y1 - y2||^2 is a
    diagnostic: a steady rise means beta_w is too small for the amount of data.
    """
    y1, y2 = f1(x1), f2(x2)
    z = 0.5 * (y1 + y2)
    disagreement = mse(y1, y2)
    terms = {"consensus": consensus_terms(y1, y2, x1, x2, disagreement), "weights": weight_penalty(f1, f2),
             "consistency": mse(z, x_est), "disagreement": disagreement.detach()}
    terms["total"] = terms["consensus"] + beta_w * terms["weights"] + beta_r * terms["consistency"]
    return terms


def noise2noise(f: nn.Module, x1: torch.Tensor, x2: torch.Tensor, beta_w: float,
                symmetric: bool = False) -> dict[str, torch.Tensor]:
    """Noise2Noise, Eq. 2: ||f(x1) - x2||^2; with ``symmetric`` also ||f(x2) - x1||^2 (averaged)."""
    data = mse(f(x1), x2)
    if symmetric:
        data = 0.5 * (data + mse(f(x2), x1))
    terms = {"noise2noise": data, "weights": weight_penalty(f)}
    terms["total"] = data + beta_w * terms["weights"]
    return terms


def supervised(name: str, f: nn.Module, x: torch.Tensor, target: torch.Tensor,
               beta_w: float) -> dict[str, torch.Tensor]:
    """||f(x) - target||^2 (the data term, named ``name``) + beta_w ||Theta||^2."""
    data = mse(f(x), target)
    terms = {name: data, "weights": weight_penalty(f)}
    terms["total"] = data + beta_w * terms["weights"]
    return terms


def noise2clean(f: nn.Module, x_noisy: torch.Tensor, reference: torch.Tensor | None,
                beta_w: float) -> dict[str, torch.Tensor]:
    """Supervised Noise2Clean, Eq. 1: ||f(x_noisy) - x||^2 with the clean reference x."""
    if reference is None:
        raise ValueError("noise2clean needs a clean reference: this dataset has no 'reference' "
                         "(prepare it from clean images, or choose --method consensus|noise2noise)")
    return supervised("noise2clean", f, x_noisy, reference, beta_w)


def distillation(g: nn.Module, x_est: torch.Tensor, teacher: torch.Tensor | None,
                 beta_w: float) -> dict[str, torch.Tensor]:
    """Distillation (paper sec. 5): ||g(x_est) - z||^2 with z the teacher run's output on the same slice.

    The objective of Noise2Clean with the teacher's output in place of the clean image; the data term
    is named ``distill`` so that validation selects on it.
    """
    if teacher is None:
        raise ValueError("distill needs the teacher's output: this dataset has no 'teacher' "
                         "(use tomoconsensus distill, which adds it)")
    return supervised("distill", g, x_est, teacher, beta_w)

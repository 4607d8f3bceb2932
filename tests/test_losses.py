import pytest
import torch
from torch import nn

from tomoconsensus import losses
from tomoconsensus.nn.unet import UNet


def test_consensus_noise2clean_factorisation_eq7():
    """|| (y1 + y2)/2 - x ||^2 = 1/2 ||y1 - x||^2 + 1/2 ||y2 - x||^2 - 1/4 ||y1 - y2||^2."""
    g = torch.Generator().manual_seed(0)
    y1, y2, x = (torch.randn(4, 1, 16, 16, generator=g, dtype=torch.float64) for _ in range(3))
    lhs = losses.mse(0.5 * (y1 + y2), x)
    rhs = losses.consensus_terms(y1, y2, x, x)
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-6)


def test_consensus_total_combines_the_three_terms():
    torch.manual_seed(0)
    f1, f2 = UNet(1, 4, 1), UNet(1, 4, 1)
    x1, x2, x_est = (torch.randn(2, 1, 8, 8) for _ in range(3))
    t = losses.consensus(f1, f2, x1, x2, x_est, beta_w=0.1, beta_r=2.0)
    t = {k: v.detach() for k, v in t.items()}
    expected = float(t["consensus"] + 0.1 * t["weights"] + 2.0 * t["consistency"])
    assert float(t["total"]) == pytest.approx(expected, rel=1e-6)
    # identity networks: L_n = 1/2|x1-x2|^2 + 1/2|x2-x1|^2 - 1/4|x1-x2|^2 = 3/4 |x1-x2|^2
    assert float(t["consensus"]) == pytest.approx(0.75 * float(losses.mse(x1, x2)), rel=1e-5)


def test_weight_penalty_counts_kernels_not_biases_or_norms():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
    assert float(losses.weight_penalty(net).detach()) == 18.0  # 2 x 1 x 3 x 3 kernel entries only


def test_noise2clean_requires_a_reference():
    with pytest.raises(ValueError, match="reference"):
        losses.noise2clean(nn.Identity(), torch.zeros(1, 1, 4, 4), None, 0.0)


def test_theorem1_noise2noise_converges_to_noise2clean():
    """A linear denoiser trained with Noise2Noise on many samples reaches the Noise2Clean optimum.

    Signal x ~ N(0, C) in R^8 with correlated C; independent zero-mean noises n1, n2 ~ N(0, s^2 I).
    Both objectives are minimised by the Wiener filter W* = C (C + s^2 I)^-1; with 100k samples
    the N2N-trained W is within 3 % (Frobenius, relative) of the N2C-trained W and of W*.
    """
    g = torch.Generator().manual_seed(0)
    d, n, s = 8, 100_000, 0.7
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    cov = a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    x1 = x + s * torch.randn(n, d, generator=g, dtype=torch.float64)
    x2 = x + s * torch.randn(n, d, generator=g, dtype=torch.float64)
    wiener = cov @ torch.linalg.inv(cov + s**2 * torch.eye(d, dtype=torch.float64))

    def fit(loss_fn) -> torch.Tensor:
        f = nn.Linear(d, d, bias=False).double()
        opt = torch.optim.LBFGS(f.parameters(), max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = loss_fn(f)
            loss.backward()
            return loss

        opt.step(closure)
        return f.weight.detach()

    w_n2n = fit(lambda f: losses.noise2noise(f, x1, x2, beta_w=0.0)["total"])
    w_n2c = fit(lambda f: losses.noise2clean(f, x1, x, beta_w=0.0)["total"])
    rel = lambda a_, b_: float(torch.linalg.norm(a_ - b_) / torch.linalg.norm(b_))  # noqa: E731
    assert rel(w_n2n, w_n2c) < 0.03
    assert rel(w_n2n, wiener) < 0.03
    # the condition matters: when n2 is correlated with n1, E[n2 | x + n1] != 0 and N2N learns the noise
    x2_correlated = x + 0.5 * (x1 - x) + s * 0.866 * torch.randn(n, d, generator=g, dtype=torch.float64)
    w_corr = fit(lambda f: losses.noise2noise(f, x1, x2_correlated, beta_w=0.0)["total"])
    assert rel(w_corr, w_n2c) > 0.1


def test_output_on_halves_error_estimates_the_operators_error_plus_the_half_noise():
    """E[1/2||g(x1) - x2||^2 + 1/2||g(x2) - x1||^2] = E||g(x_k) - x||^2 + sigma^2 for independent halves:
    an oracle g (returns the clean image) scores sigma^2, the identity 2 sigma^2 (its own noise + the
    target's), and the supervised methods have no such estimate."""
    import torch

    from tomoconsensus import methods

    gen = torch.Generator().manual_seed(0)
    clean = torch.rand(4, 1, 64, 64, generator=gen)
    sigma = 0.1
    x1 = clean + sigma * torch.randn(clean.shape, generator=gen)
    x2 = clean + sigma * torch.randn(clean.shape, generator=gen)

    class Oracle(torch.nn.Module):
        def forward(self, x):
            return clean

    ident = torch.nn.Identity()
    oracle = methods.output_on_halves_error("consensus", {"f1": Oracle(), "f2": Oracle()}, x1, x2)
    identity = methods.output_on_halves_error("noise2noise", {"f": ident}, x1, x2)
    assert float(oracle) == pytest.approx(sigma**2, rel=0.03)
    assert float(identity) == pytest.approx(2 * sigma**2, rel=0.03)
    # consensus scores the average of its two networks: one oracle and one identity give (x + x_k)/2
    mixed = methods.output_on_halves_error("consensus", {"f1": Oracle(), "f2": ident}, x1, x2)
    assert float(mixed) == pytest.approx(sigma**2 / 4 + sigma**2, rel=0.03)
    assert methods.output_on_halves_error("noise2clean", {"f": ident}, x1, x2) is None

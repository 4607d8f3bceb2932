import pytest
import torch

from tomoconsensus.nn.unet import UNet, count_parameters


@pytest.mark.parametrize("shape", [(2, 1, 32, 32), (1, 1, 50, 37), (1, 2, 24, 40)])
def test_any_input_size_and_identity_at_initialisation(shape):
    net = UNet(channels=shape[1], base_features=4, depth=2).eval()
    x = torch.randn(shape)
    y = net(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)  # zero-initialised head + residual skip


def test_paper_sizes():
    assert count_parameters(UNet(1, 32, 4)) == pytest.approx(7.76e6, rel=0.01)
    assert count_parameters(UNet(2, 64, 4)) == pytest.approx(31.0e6, rel=0.01)


def test_network_learns_a_residual():
    torch.manual_seed(0)
    net = UNet(1, 4, 2)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    x = torch.randn(8, 1, 16, 16)
    for _ in range(60):
        loss = torch.mean((net(x) - 0.5 * x) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * torch.mean((0.5 * x) ** 2).item()

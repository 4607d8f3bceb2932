"""UNet denoiser (Ronneberger et al. 2015) in the FBPConvNet form of Jin et al. 2017.

Each level has two 3x3 convolutions with batch norm and ReLU; the encoder halves the resolution
with 2x2 max pooling and doubles the features; the decoder upsamples with 2x2 transposed
convolutions and concatenates the skip connection. A 1x1 convolution maps to the output channels
and, as in FBPConvNet, the input is added to the output (the network learns the noise to remove).
The last convolution starts at zero, so an untrained network is the identity.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two (3x3 conv, batch norm, ReLU) layers."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Residual UNet.

    Parameters
    ----------
    channels : int
        Input and output channels (1 for CT, 2 = real/imaginary for MR).
    base_features : int
        Features of the first level (32 in the paper for CT, 64 for MR); doubled per level.
    depth : int
        Number of poolings (4 in FBPConvNet). Inputs of any size work: they are padded
        internally to a multiple of ``2**depth`` and cropped back.

    Shapes
    ------
    (B, channels, H, W) -> (B, channels, H, W)
    """

    def __init__(self, channels: int = 1, base_features: int = 32, depth: int = 4):
        super().__init__()
        self.depth = depth
        features = [base_features * 2**i for i in range(depth + 1)]
        self.encoders = nn.ModuleList([conv_block(channels, features[0])] +
                                      [conv_block(features[i], features[i + 1]) for i in range(depth)])
        self.upsamplers = nn.ModuleList([nn.ConvTranspose2d(features[i + 1], features[i], 2, stride=2)
                                         for i in reversed(range(depth))])
        self.decoders = nn.ModuleList([conv_block(2 * features[i], features[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(features[0], channels, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2**self.depth
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        # Reflection keeps image statistics at the border (zero padding would look like an edge).
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x
        skips = []
        h = padded
        for i, encoder in enumerate(self.encoders):
            h = encoder(h if i == 0 else F.max_pool2d(h, 2))
            skips.append(h)
        skips.pop()
        for upsample, decoder in zip(self.upsamplers, self.decoders, strict=True):
            h = decoder(torch.cat([skips.pop(), upsample(h)], dim=1))
        out = padded + self.head(h)
        return out[..., :height, :width]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def parameter_count(channels: int, base_features: int, depth: int) -> int:
    """Parameters of ``UNet(channels, base_features, depth)``, counted without building it (exact integer).

    With f_i = base_features 2**i: a conv block (c -> f) has 9 c f + 9 f^2 conv weights and 4 f batch-norm
    weights; the encoder blocks map channels -> f_0 and f_i -> f_(i+1), the decoders 2 f_i -> f_i, the
    transposed convolutions f_(i+1) -> f_i (4 f_(i+1) f_i weights + f_i biases), the head f_0 -> channels.
    """
    def block(c: int, f: int) -> int:
        return 9 * c * f + 9 * f * f + 4 * f

    f = [base_features * 2**i for i in range(depth + 1)]
    encoders = block(channels, f[0]) + sum(block(f[i], f[i + 1]) for i in range(depth))
    decoders = sum(block(2 * f[i], f[i]) + 4 * f[i + 1] * f[i] + f[i] for i in range(depth))
    return encoders + decoders + f[0] * channels + channels

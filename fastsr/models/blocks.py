"""Building blocks from the CNN super-resolution literature, each fx-traceable."""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation)


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the identity, no activation after the add (SRResNet).

    `dilation` > 1 widens the receptive field at the same cost (dilated residual block).
    """

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(channels, channels, dilation),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            conv3x3(channels, channels, dilation),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation gate of RCAN: global pool, 1x1 down, ReLU, 1x1 up, sigmoid."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class AttentionBlock(nn.Module):
    """Residual channel-attention block (RCAB): conv-ReLU-conv, channel attention, identity."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(channels, channels, dilation),
            nn.ReLU(),
            conv3x3(channels, channels, dilation),
            ChannelAttention(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualDenseBlock(nn.Module):
    """RDN's block: each conv sees the concatenation of all earlier features, a 1x1 conv
    fuses them back to `channels`, and the block adds its input."""

    def __init__(self, channels: int, growth: int = 16, layers: int = 4, dilation: int = 1) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(conv3x3(channels + i * growth, growth, dilation), nn.ReLU())
            for i in range(layers)
        )
        self.fuse = nn.Conv2d(channels + layers * growth, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x
        for layer in self.layers:
            features = torch.cat([features, layer(features)], dim=1)
        return x + self.fuse(features)


BLOCKS = {
    "residual": ResidualBlock,
    "attention": AttentionBlock,
    "dense": ResidualDenseBlock,
}

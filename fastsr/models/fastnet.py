"""FastNet: a plain LR-space conv stack with a sub-pixel tail and a bicubic skip (ESPCN-class)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastsr.models.srnet import COLOR_CHANNELS, zero_last_conv


class FastNet(nn.Module):
    """A 5x5 conv then 3x3 convs of the given widths, each followed by ReLU, and a 3x3 conv
    to C*r^2 channels shuffled to the HR grid and added to a bicubic upscale."""

    def __init__(
        self, scale: int, widths: tuple[int, ...] = (48, 32, 16), color: str = "y"
    ) -> None:
        super().__init__()
        image_channels = COLOR_CHANNELS[color]
        self.scale = scale
        layers: list[nn.Module] = []
        in_channels = image_channels
        for i, width in enumerate(widths):
            kernel = 5 if i == 0 else 3
            layers += [nn.Conv2d(in_channels, width, kernel, padding=kernel // 2), nn.ReLU()]
            in_channels = width
        layers += [
            nn.Conv2d(in_channels, image_channels * scale * scale, 3, padding=1),
            nn.PixelShuffle(scale),
        ]
        self.body = nn.Sequential(*layers)
        zero_last_conv(self.body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        upsampled = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return self.body(x) + upsampled

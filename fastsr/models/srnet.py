"""SRNet: residual blocks in LR space, a sub-pixel tail and a global bicubic skip."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastsr.models.blocks import BLOCKS

COLOR_CHANNELS = {"rgb": 3, "y": 1}


def zero_last_conv(module: nn.Module) -> None:
    """Start the residual branch at zero, so an untrained net is exactly the bicubic upscaler:
    without it, a BatchNorm net needed over a thousand steps just to get back to bicubic."""
    last = [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)


class SRNet(nn.Module):
    """Head conv-BN-ReLU, `blocks` blocks of the chosen type, conv to C*r^2 + pixel shuffle;
    the network predicts the residual over a bicubic upscale of its input."""

    def __init__(
        self,
        scale: int,
        channels: int = 64,
        blocks: int = 8,
        color: str = "rgb",
        block: str = "residual",
        dilation: int = 1,
    ) -> None:
        super().__init__()
        image_channels = COLOR_CHANNELS[color]
        self.scale = scale
        self.head = nn.Sequential(
            nn.Conv2d(image_channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.body = nn.Sequential(
            *(BLOCKS[block](channels, dilation=dilation) for _ in range(blocks))
        )
        self.tail = nn.Sequential(
            nn.Conv2d(channels, image_channels * scale * scale, 3, padding=1),
            nn.PixelShuffle(scale),
        )
        zero_last_conv(self.tail)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        upsampled = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return self.tail(self.body(self.head(x))) + upsampled

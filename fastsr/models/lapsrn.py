"""A LapSRN-style Laplacian pyramid: x4 (or x8) as x2 stages, each adding a residual."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fastsr.models.srnet import COLOR_CHANNELS


class PyramidLevel(nn.Module):
    """Convs on the incoming features, a 2x transposed conv, and a conv to the image residual."""

    def __init__(self, channels: int, depth: int, image_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2)]
        layers += [
            nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        self.features = nn.Sequential(*layers)
        self.to_residual = nn.Conv2d(channels, image_channels, 3, padding=1)


class LapSRN(nn.Module):
    """Each level doubles the features and the image; the image branch is a bicubic x2."""

    def __init__(self, scale: int, channels: int = 64, depth: int = 5, color: str = "y") -> None:
        super().__init__()
        levels = int(math.log2(scale))
        if 2**levels != scale:
            raise ValueError(f"LapSRN needs a power-of-two scale, got {scale}")
        image_channels = COLOR_CHANNELS[color]
        self.head = nn.Sequential(
            nn.Conv2d(image_channels, channels, 3, padding=1), nn.LeakyReLU(0.2)
        )
        self.levels = nn.ModuleList(
            PyramidLevel(channels, depth, image_channels) for _ in range(levels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, image = self.head(x), x
        for level in self.levels:
            features = level.features(features)
            upsampled = F.interpolate(image, scale_factor=2, mode="bicubic", align_corners=False)
            image = upsampled + level.to_residual(features)
        return image

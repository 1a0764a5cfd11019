"""A small DBPN-style network: iterative up- and down-projection units with error feedback."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastsr.models.srnet import COLOR_CHANNELS

# (kernel, stride, padding) of the projection convs per scale, as in DBPN.
PROJECTION_GEOMETRY = {2: (6, 2, 2), 3: (7, 3, 2), 4: (8, 4, 2)}


def _difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Written as add and scalar mul: the engine's IR has those ops and no subtraction.
    return a + b * -1.0


class _Projection(nn.Module):
    def __init__(self, channels: int, scale: int, up: bool) -> None:
        super().__init__()
        kernel, stride, padding = PROJECTION_GEOMETRY[scale]

        def up_conv() -> nn.Sequential:
            return nn.Sequential(
                nn.ConvTranspose2d(channels, channels, kernel, stride, padding), nn.PReLU(channels)
            )

        def down_conv() -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(channels, channels, kernel, stride, padding), nn.PReLU(channels)
            )

        there, back = (up_conv, down_conv) if up else (down_conv, up_conv)
        self.project, self.back_project, self.correct = there(), back(), there()


class UpProjection(_Projection):
    """H0 = up(L); the error of projecting H0 back down, up-projected, corrects H0."""

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__(channels, scale, up=True)

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        high = self.project(low)
        error = _difference(self.back_project(high), low)
        return high + self.correct(error)


class DownProjection(_Projection):
    """L0 = down(H); the error of projecting L0 back up, down-projected, corrects L0."""

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__(channels, scale, up=False)

    def forward(self, high: torch.Tensor) -> torch.Tensor:
        low = self.project(high)
        error = _difference(self.back_project(low), high)
        return low + self.correct(error)


class BackProjectionNet(nn.Module):
    """Features, `stages` up/down projection pairs plus a last up projection; every HR
    feature map is concatenated and reconstructed as a residual over bicubic."""

    def __init__(self, scale: int, channels: int = 32, stages: int = 2, color: str = "rgb") -> None:
        super().__init__()
        image_channels = COLOR_CHANNELS[color]
        self.scale = scale
        self.head = nn.Sequential(
            nn.Conv2d(image_channels, channels * 2, 3, padding=1),
            nn.PReLU(channels * 2),
            nn.Conv2d(channels * 2, channels, 1),
            nn.PReLU(channels),
        )
        self.ups = nn.ModuleList(UpProjection(channels, scale) for _ in range(stages + 1))
        self.downs = nn.ModuleList(DownProjection(channels, scale) for _ in range(stages))
        self.reconstruct = nn.Conv2d(channels * (stages + 1), image_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.head(x)
        highs = []
        for up, down in zip(self.ups, self.downs, strict=False):
            highs.append(up(low))
            low = down(highs[-1])
        highs.append(self.ups[-1](low))
        upsampled = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return self.reconstruct(torch.cat(highs, dim=1)) + upsampled

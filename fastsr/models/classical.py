"""Classical reference networks: ESPCN and FSRCNN (Y channel) and EDSR-baseline (RGB)."""

from __future__ import annotations

import torch
from torch import nn

# DIV2K RGB mean, the constant EDSR subtracts before its body and adds back after.
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


class ESPCN(nn.Module):
    """Shi et al. 2016: 5x5 conv 1->64, 3x3 64->32, both tanh, 3x3 32->r^2, pixel shuffle."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 64, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(64, 32, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(32, scale * scale, 3, padding=1),
            nn.PixelShuffle(scale),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FSRCNN(nn.Module):
    """Dong et al. 2016: feature extraction d, shrink to s, m mapping layers, expand to d,
    then a 9x9 transposed conv of stride r straight to the HR grid."""

    def __init__(self, scale: int, d: int = 56, s: int = 12, m: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, d, 5, padding=2), nn.PReLU(d)]
        layers += [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        layers += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        layers += [nn.ConvTranspose2d(d, 1, 9, stride=scale, padding=4, output_padding=scale - 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _mean_shift(sign: float) -> nn.Conv2d:
    """A frozen 1x1 conv adding `sign` times the DIV2K mean, so the engine sees a plain conv."""
    shift = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        shift.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        shift.bias.copy_(sign * torch.tensor(DIV2K_RGB_MEAN))
    shift.requires_grad_(False)
    return shift


class EDSRBlock(nn.Module):
    def __init__(self, channels: int, res_scale: float) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


def _upsampler(channels: int, scale: int) -> nn.Sequential:
    # x4 is two x2 steps, as in EDSR; x2 and x3 are one step.
    factors = [2, 2] if scale == 4 else [scale]
    layers: list[nn.Module] = []
    for factor in factors:
        layers += [
            nn.Conv2d(channels, channels * factor * factor, 3, padding=1),
            nn.PixelShuffle(factor),
        ]
    return nn.Sequential(*layers)


class EDSR(nn.Module):
    """Lim et al. 2017; the defaults are EDSR-baseline (16 blocks of 64 channels)."""

    def __init__(
        self, scale: int, channels: int = 64, blocks: int = 16, res_scale: float = 1.0
    ) -> None:
        super().__init__()
        self.subtract_mean = _mean_shift(-1.0)
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(
            *(EDSRBlock(channels, res_scale) for _ in range(blocks)),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.tail = nn.Sequential(_upsampler(channels, scale), nn.Conv2d(channels, 3, 3, padding=1))
        self.add_mean = _mean_shift(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(self.subtract_mean(x))
        return self.add_mean(self.tail(features + self.body(features)))

"""BT.601 studio-range YCbCr, the colour convention of the SR literature (MATLAB rgb2ycbcr).

RGB and YCbCr are both in [0, 1]: Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255.
One place for the conversion: Y-channel models (the C++ image stage takes these
constants), training, and the PSNR/SSIM protocol.
"""

from __future__ import annotations

import numpy as np

RGB_TO_YCBCR = (
    np.array(
        [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]
    )
    / 255
)
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0]) / 255
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)


def _apply(matrix: np.ndarray, x, channel_axis: int):
    import torch

    moved = x.movedim(channel_axis, -1)
    return (moved @ torch.from_numpy(matrix.T).to(x)).movedim(-1, channel_axis)


def _offset(x, channel_axis: int):
    import torch

    shape = [1] * x.ndim
    shape[channel_axis] = 3
    return torch.from_numpy(YCBCR_OFFSET).to(x).reshape(shape)


def rgb_to_ycbcr(rgb, channel_axis: int = -1):
    """torch tensor RGB -> YCbCr along `channel_axis`."""
    return _apply(RGB_TO_YCBCR, rgb, channel_axis) + _offset(rgb, channel_axis)


def ycbcr_to_rgb(ycbcr, channel_axis: int = -1):
    """torch tensor YCbCr -> RGB along `channel_axis`."""
    return _apply(YCBCR_TO_RGB, ycbcr - _offset(ycbcr, channel_axis), channel_axis)


def rgb_to_y(rgb, channel_axis: int = -1):
    """Luma of a numpy array or torch tensor; the channel axis is kept with size 1."""
    weights = RGB_TO_YCBCR[0]
    if isinstance(rgb, np.ndarray):
        r, g, b = (np.take(rgb, [i], axis=channel_axis) for i in range(3))
    else:
        r, g, b = (rgb.narrow(channel_axis, i, 1) for i in range(3))
    return YCBCR_OFFSET[0] + weights[0] * r + weights[1] * g + weights[2] * b

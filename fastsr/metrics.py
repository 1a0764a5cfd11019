"""PSNR and SSIM on the BT.601 Y channel, by the protocol of the SR literature."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fastsr.color import rgb_to_y

# BT.601 full-range luma weights: on a grayscale image replicated to RGB they give back the gray.
_FULL_RANGE_LUMA = np.array([0.299, 0.587, 0.114])


def y_channel_255(image_uint8: np.ndarray, grayscale_source: bool = False) -> np.ndarray:
    """The plane MATLAB scoring scripts compare, 0-255, float64 (not rounded).

    Colour images: rgb2ycbcr's studio-range Y. Images whose source is grayscale (Set14
    `bridge`) are scored on their gray level unconverted, as those scripts do for
    single-channel images; only with that does our Set14 bicubic baseline match the
    published one (30.24 dB at x2, instead of 30.33).
    """
    rgb = image_uint8.astype(np.float64)
    if grayscale_source:
        return rgb @ _FULL_RANGE_LUMA
    return rgb_to_y(rgb / 255)[..., 0] * 255


def _shave(plane: np.ndarray, border: int) -> np.ndarray:
    return plane[border:-border, border:-border] if border else plane


def psnr_y(sr: np.ndarray, hr: np.ndarray, shave: int, grayscale_source: bool = False) -> float:
    """PSNR (peak 255) between the Y channels of two uint8 RGB images, `shave` pixels cropped."""
    sr_y = _shave(y_channel_255(sr, grayscale_source), shave)
    diff = sr_y - _shave(y_channel_255(hr, grayscale_source), shave)
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _gaussian_profile(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    profile = torch.exp(-(offsets**2) / (2 * sigma**2))
    return profile / profile.sum()


def ssim_plane(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two 0-255 planes as in Wang et al.'s MATLAB code: 11x11 Gaussian (sigma 1.5),
    'valid' filtering, K1 = 0.01, K2 = 0.03, mean of the SSIM map."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    profile = _gaussian_profile()
    x = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
    y = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float64))
    planes = torch.stack([x, y, x * x, y * y, x * y])[:, None]
    # The 2-D Gaussian is separable: filter rows, then columns.
    filtered = F.conv2d(F.conv2d(planes, profile.view(1, 1, 1, -1)), profile.view(1, 1, -1, 1))
    mu_x, mu_y, xx, yy, xy = filtered[:, 0]
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return float(ssim_map.mean())


def ssim_y(sr: np.ndarray, hr: np.ndarray, shave: int, grayscale_source: bool = False) -> float:
    """SSIM between the Y channels of two uint8 RGB images, `shave` pixels cropped."""
    sr_y = _shave(y_channel_255(sr, grayscale_source), shave)
    return ssim_plane(sr_y, _shave(y_channel_255(hr, grayscale_source), shave))

"""BT.601 studio-range colour conversion against the standard's coefficients and MATLAB."""

import numpy as np
import pytest
import torch

from fastsr.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb


def ycbcr_reference(rgb: np.ndarray) -> np.ndarray:
    """Written out from the standard's coefficients, channels last."""
    r, g, b = rgb[..., 0] * 255, rgb[..., 1] * 255, rgb[..., 2] * 255
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return np.stack([y, cb, cr], axis=-1) / 255


def rgb_reference(ycbcr: np.ndarray) -> np.ndarray:
    """The published inverse (ITU-R BT.601 studio range), channels last."""
    y, cb, cr = (ycbcr[..., i] * 255 for i in range(3))
    r = 1.164383 * (y - 16) + 1.596027 * (cr - 128)
    g = 1.164383 * (y - 16) - 0.391762 * (cb - 128) - 0.812968 * (cr - 128)
    b = 1.164383 * (y - 16) + 2.017232 * (cb - 128)
    return np.stack([r, g, b], axis=-1) / 255


@pytest.mark.parametrize("channel_axis", [-1, 1])
def test_conversion_matches_the_standard_on_either_channel_axis(channel_axis):
    rgb_last = np.random.default_rng(0).random((2, 4, 5, 3))
    rgb = torch.from_numpy(rgb_last).movedim(-1, channel_axis)
    ycbcr = rgb_to_ycbcr(rgb, channel_axis)
    np.testing.assert_allclose(
        ycbcr.movedim(channel_axis, -1).numpy(), ycbcr_reference(rgb_last), atol=1e-12
    )
    np.testing.assert_allclose(
        rgb_reference(ycbcr.movedim(channel_axis, -1).numpy()), rgb_last, atol=1e-5
    )
    np.testing.assert_allclose(ycbcr_to_rgb(ycbcr, channel_axis).numpy(), rgb.numpy(), atol=1e-12)
    luma = rgb_to_y(rgb, channel_axis)
    np.testing.assert_allclose(luma.numpy(), ycbcr.narrow(channel_axis, 0, 1).numpy(), atol=1e-12)


def test_matlab_white_and_black_and_numpy_luma():
    white_and_black = np.array([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]])
    ycbcr = rgb_to_ycbcr(torch.from_numpy(white_and_black)) * 255
    # MATLAB rgb2ycbcr: white -> (235, 128, 128), black -> (16, 128, 128).
    np.testing.assert_allclose(ycbcr.flatten(), [235, 128, 128, 16, 128, 128], atol=1e-9)
    np.testing.assert_allclose(rgb_to_y(white_and_black)[..., 0] * 255, [[235, 16]], atol=1e-9)

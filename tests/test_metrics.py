import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from fastsr.metrics import psnr_y, ssim_plane, ssim_y, y_channel_255


def test_y_channel_uses_bt601_studio_range():
    pixels = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], dtype=np.uint8)
    np.testing.assert_allclose(y_channel_255(pixels)[0], [235.0, 16.0, 16 + 65.481])


def test_grayscale_sources_are_scored_on_their_gray_level():
    gray = np.array([[[0, 0, 0], [100, 100, 100], [255, 255, 255]]], dtype=np.uint8)
    np.testing.assert_allclose(y_channel_255(gray, grayscale_source=True)[0], [0, 100, 255])
    hr = np.full((8, 8, 3), 100, dtype=np.uint8)
    expected = 10 * math.log10(255**2 / 1.0)
    assert psnr_y(hr + 1, hr, shave=1, grayscale_source=True) == pytest.approx(expected)


def test_psnr_of_one_gray_level_with_border_shaved():
    hr = np.full((10, 10, 3), 100, dtype=np.uint8)
    sr = hr + 1
    sr[0, :] = 255  # the shaved border must not count
    # Gray +1 in R, G and B moves Y by 219/255.
    expected = 10 * math.log10(255**2 / (219 / 255) ** 2)
    assert psnr_y(sr, hr, shave=2) == pytest.approx(expected, abs=1e-9)
    assert psnr_y(hr, hr, shave=2) == math.inf


def test_ssim_of_two_flat_planes_is_the_luminance_term():
    c1 = (0.01 * 255) ** 2
    a, b = np.full((20, 20), 50.0), np.full((20, 20), 80.0)
    expected = (2 * 50 * 80 + c1) / (50**2 + 80**2 + c1)
    assert ssim_plane(a, b) == pytest.approx(expected, abs=1e-12)
    assert ssim_plane(a, a) == pytest.approx(1.0)


def test_ssim_matches_scikit_image_gaussian_ssim():
    rng = np.random.default_rng(0)
    a = rng.random((40, 50)) * 255
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    reference = structural_similarity(
        a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim_plane(a, b) == pytest.approx(reference, abs=1e-9)


def test_ssim_y_shaves_the_border():
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
    sr = hr.copy()
    sr[:3] = 0
    assert ssim_y(sr, hr, shave=3) == pytest.approx(1.0)
    assert ssim_y(sr, hr, shave=0) < 0.999

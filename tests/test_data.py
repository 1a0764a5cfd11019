import numpy as np
import pytest
import torch
from PIL import Image

from fastsr.data import (
    PatchSampler,
    degrade,
    imresize,
    mod_crop,
    resize_matrix,
)


def test_downscale_weights_match_hand_computed_antialiased_cubic():
    # Output 1 of 8 -> 4 samples at u = 1.5 with the kernel 0.5 * cubic(0.5 * d) over 1-based
    # taps -3..6, i.e. 0, -.01171875, -.03515625, .11328125, .43359375, .43359375, .11328125,
    # -.03515625, -.01171875, 0 (they already sum to 1). Taps 0, -1, -2 mirror onto 1, 2, 3.
    expected = [0.546875, 0.3984375, 0.1015625, -0.03515625, -0.01171875, 0, 0, 0]
    np.testing.assert_allclose(resize_matrix(8, 4, 0.5)[0], expected, atol=1e-12)


def test_upscale_weights_match_hand_computed_cubic():
    # Output 1 of 4 -> 8 samples at u = 0.75: taps -2..3 weigh 0, -.0234375, .2265625,
    # .8671875, -.0703125, 0; taps 0 and -1 mirror onto 1 and 2.
    expected = [1.09375, -0.09375, 0, 0]
    np.testing.assert_allclose(resize_matrix(4, 8, 2.0)[0], expected, atol=1e-12)


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 2.0, 3.0, 4.0])
def test_resize_rows_sum_to_one(scale):
    np.testing.assert_allclose(resize_matrix(24, round(24 * scale), scale).sum(axis=1), 1.0)


def test_imresize_keeps_constant_images_and_rounds_uint8():
    image = np.full((12, 18, 3), 77, dtype=np.uint8)
    small = imresize(image, 1 / 3)
    assert small.dtype == np.uint8 and small.shape == (4, 6, 3)
    assert (small == 77).all()
    assert imresize(image.astype(np.float64), 2.0).shape == (24, 36, 3)


def test_imresize_is_separable_matrix_product():
    rng = np.random.default_rng(0)
    plane = rng.random((10, 14))
    expected = resize_matrix(10, 5, 0.5) @ plane @ resize_matrix(14, 7, 0.5).T
    np.testing.assert_allclose(imresize(plane, 0.5), expected, atol=1e-12)


def test_mod_crop_and_degrade_shapes():
    hr = np.zeros((27, 34, 3), dtype=np.uint8)
    assert mod_crop(hr, 4).shape == (24, 32, 3)
    lr, hr_cropped = degrade(hr, 4)
    assert lr.shape == (6, 8, 3) and hr_cropped.shape == (24, 32, 3)


def _write(folder, name, image):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / f"{name}.png")


def test_patches_are_aligned_and_augmented_together(tmp_path):
    rng = np.random.default_rng(1)
    smooth = imresize(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8), 4.0)
    _write(tmp_path / "set", "img", smooth)
    _write(tmp_path / "set", "302003", smooth)
    sampler = PatchSampler([tmp_path / "set"], scale=2, lr_patch=12, seed=3)
    assert len(sampler.pairs) == 1  # the Set5 `woman` source is held out
    lr, hr = sampler.sample(6)
    assert lr.shape == (6, 3, 12, 12) and hr.shape == (6, 3, 24, 24)
    for lr_patch, hr_patch in zip(lr, hr, strict=True):
        hr_uint8 = (hr_patch.permute(1, 2, 0) * 255).round().byte().numpy()
        redone = imresize(hr_uint8, 0.5).astype(int)
        expected = (lr_patch.permute(1, 2, 0) * 255).round().int().numpy()
        # Away from the patch border the crop's own degradation equals the image's.
        assert np.abs(redone[3:-3, 3:-3] - expected[3:-3, 3:-3]).max() <= 1


def test_sampler_is_reproducible_and_resumable(tmp_path):
    _write(
        tmp_path / "set", "img", np.random.default_rng(2).integers(0, 256, (40, 40, 3), np.uint8)
    )
    first = PatchSampler([tmp_path / "set"], scale=2, lr_patch=8, seed=5)
    second = PatchSampler([tmp_path / "set"], scale=2, lr_patch=8, seed=5)
    first.sample(4)
    state = first.state()
    expected = first.sample(4)
    second.restore(state)
    resumed = second.sample(4)
    assert all(torch.equal(a, b) for a, b in zip(expected, resumed, strict=True))

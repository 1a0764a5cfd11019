"""Bicubic upscaling peers on an RGB uint8 frame: the floor every SR model must beat on quality.

Each output is compared with torch's float bicubic rounded to uint8, by the mean difference in
0-255 levels. Pillow's cubic uses a = -0.5 where OpenCV and torch use a = -0.75, and torch's
uint8 path uses integer weights, so single pixels at sharp edges differ by up to ~20 levels
between them; the mean shows whether an implementation computes a different image.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from benchmarks import config, first_call

# implementation -> bound on the mean |difference| in 0-255 levels from torch's float bicubic.
MEAN_LEVEL_BOUNDS = {
    "pillow_bicubic_u8": 3.0,
    "cv2_inter_cubic_u8": 0.05,
    "torch_bicubic_f32_nchw": 0.0,
    "torch_bicubic_u8_nchw": 0.5,
}


def prepare(name: str, frame: np.ndarray, scale: int):
    """(input, timed function, output -> uint8 HxWx3) for one implementation."""
    height, width = frame.shape[0] * scale, frame.shape[1] * scale
    if name == "pillow_bicubic_u8":
        resample = Image.Resampling.BICUBIC
        return (
            frame,
            lambda f: np.asarray(Image.fromarray(f).resize((width, height), resample)),
            (lambda out: out),
        )
    if name == "cv2_inter_cubic_u8":
        import cv2

        return (
            frame,
            lambda f: cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC),
            (lambda out: out),
        )
    nchw = torch.from_numpy(frame).permute(2, 0, 1)[None].contiguous()

    def interpolate(x):
        return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)

    if name == "torch_bicubic_f32_nchw":
        return nchw.float(), interpolate, _float_to_u8
    return nchw, interpolate, lambda out: out[0].permute(1, 2, 0).numpy()


def _float_to_u8(out: torch.Tensor) -> np.ndarray:
    return out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


@cache
def astronaut_frame(width: int, height: int) -> np.ndarray:
    """scikit-image's astronaut at the benchmark size: real edges, not noise."""
    from skimage import data

    return np.array(Image.fromarray(data.astronaut()).resize((width, height), Image.LANCZOS))


@pytest.mark.parametrize("scale", config()["bicubic"]["scales"])
@pytest.mark.parametrize("implementation", list(MEAN_LEVEL_BOUNDS))
def test_bicubic_throughput(benchmark, timed, bicubic_size, scale, implementation):
    if implementation.startswith("cv2"):
        pytest.importorskip("cv2", reason="OpenCV is optional: pip install opencv-python-headless")
    width, height = bicubic_size
    frame = astronaut_frame(width, height)
    data, upscale, to_u8 = prepare(implementation, frame, scale)
    output, seconds = first_call(upscale, data)
    reference = _float_to_u8(upscale_reference(frame, scale))
    levels = np.abs(to_u8(output).astype(np.int16) - reference.astype(np.int16))

    benchmark.group = f"bicubic x{scale} {width}x{height}"
    benchmark.extra_info.update(
        kind="bicubic",
        implementation=implementation,
        width=width,
        height=height,
        batch=1,
        scale=scale,
        max_level_diff=int(levels.max()),
        mean_level_diff=float(levels.mean()),
    )
    assert levels.mean() <= MEAN_LEVEL_BOUNDS[implementation], (
        f"{implementation} differs from torch bicubic by {levels.mean():.3f} levels on average"
    )
    timed(upscale, data, seconds)
    if benchmark.stats is not None:
        fps = 1 / benchmark.stats.stats.median
        benchmark.extra_info.update(fps=fps, mpix_out_per_s=fps * width * height * scale**2 / 1e6)


def upscale_reference(frame: np.ndarray, scale: int) -> torch.Tensor:
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)

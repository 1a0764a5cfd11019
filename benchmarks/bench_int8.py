"""Shipped models at fp32, int8 and bf16 on the CPU backend, one group per model so the
rows compare in the same run; each int8 run is first checked against fp32 (> 40 dB), each
bf16 run against fp32 (> 60 dB, as tests/test_bf16_kernels.py bounds it)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fastsr.engine import Engine
from fastsr.graph import load

MODELS = ("fast_x2", "fast_x4", "quality_x2")


def natural_frame(height: int, width: int, channels: int) -> np.ndarray:
    """A validation image mirrored out to the frame size: int8 ranges are calibrated on
    natural images, and uniform noise would clip them."""
    from fastsr.color import RGB_TO_YCBCR, YCBCR_OFFSET
    from fastsr.data import image_paths, load_rgb
    from fastsr.evaluate import default_data_dir

    paths = image_paths(default_data_dir())
    if not paths:
        pytest.skip(f"no validation images under {default_data_dir()}")
    rgb = load_rgb(paths[0]).astype(np.float32) / 255
    reps = (-(-height // rgb.shape[0]), -(-width // rgb.shape[1]), 1)
    rgb = np.tile(np.concatenate([rgb, rgb[::-1]], 0), reps)[:height, :width]
    if channels == 1:
        rgb = (rgb @ RGB_TO_YCBCR[0] + YCBCR_OFFSET[0])[..., None]
    return np.ascontiguousarray(rgb[None], np.float32)


def precision_group(model: str, width: int, height: int) -> str:
    return f"{model} {width}x{height} cpu fp32 vs int8 vs bf16"


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("model", MODELS)
def test_int8_speed(benchmark, timed, quick, threads, model, precision):
    graph = load(model)
    if "int8" not in graph.meta:
        pytest.skip(f"{model} ships no int8 calibration (python -m fastsr.quantize)")
    height, width = (36, 64) if quick else (360, 640)
    x = natural_frame(height, width, graph.input_channels)
    engine = Engine(graph, "cpu", precision, threads=threads)
    start = time.perf_counter()
    y = engine.run(x)
    first = time.perf_counter() - start
    reference = Engine(graph, "cpu", "fp32", threads=threads).run(x)
    psnr = 10 * np.log10(1 / max(float(np.mean((y - reference) ** 2)), 1e-12))
    assert psnr > 40, f"{model} int8 strays from fp32: {psnr:.1f} dB"
    compiled = engine.compiled(1, height, width)
    benchmark.group = precision_group(model, width, height)
    benchmark.extra_info.update(
        kind="precision", model=model, precision=precision, width=width, height=height,
        threads=threads, psnr_vs_fp32=psnr,
        set5_psnr_cost_db=graph.meta["int8"].get("psnr_cost_db"),
    )  # fmt: skip
    timed(lambda _: compiled.program.run_steps(), None, first)


@pytest.mark.parametrize("model", MODELS)
def test_bf16_speed(benchmark, timed, quick, threads, model):
    """bf16 beside test_int8_speed's fp32 and int8 rows of the same model and frame."""
    from fastsr.backends import get_backend

    if "bf16" not in get_backend("cpu").precisions():
        pytest.skip("no bf16 kernel here (needs avx512_bf16 at avx512, FEAT_BF16 at neon)")
    graph = load(model)
    height, width = (36, 64) if quick else (360, 640)
    x = natural_frame(height, width, graph.input_channels)
    engine = Engine(graph, "cpu", "bf16", threads=threads)
    start = time.perf_counter()
    y = engine.run(x)
    first = time.perf_counter() - start
    reference = Engine(graph, "cpu", "fp32", threads=threads).run(x)
    psnr = 10 * np.log10(1 / max(float(np.mean((y - reference) ** 2)), 1e-12))
    assert psnr > 60, f"{model} bf16 strays from fp32: {psnr:.1f} dB"
    compiled = engine.compiled(1, height, width)
    benchmark.group = precision_group(model, width, height)
    benchmark.extra_info.update(
        kind="precision", model=model, precision="bf16", width=width, height=height,
        threads=threads, psnr_vs_fp32=psnr,
        set5_psnr_cost_db=graph.meta.get("bf16", {}).get("psnr_cost_db"),
    )  # fmt: skip
    timed(lambda _: compiled.program.run_steps(), None, first)

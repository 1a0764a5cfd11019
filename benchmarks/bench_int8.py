"""Shipped models at every precision, fastsr's and its peers' (benchmarks/quantized_peers.py,
each when installed), one group per model so the rows compare in the same run. Every row
carries its Set5 Y-PSNR and its PSNR against fastsr fp32 on the timed frame, which is first
checked: > 35 dB for fastsr int8, > 55 dB for bf16, > 30 dB for a peer (a layout or
calibration gone wrong lands far lower)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import build_network, first_call, network_specs
from benchmarks.quantized_peers import PEERS, make_peer, peer_upscaler, set5_psnr, unavailable
from fastsr.engine import Engine
from fastsr.graph import load

MODELS = ("fast_x2", "fast_x4", "quality_x2", "quality_x4")


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
    return f"{model} {width}x{height} precisions"


# quality_x4 int8 (Set5 cost 0.27 dB, the largest shipped) lands at 39 dB on the frame;
# quality_x4 bf16 on AMX (its 17 body and tail convs in bf16) at 58.6 dB
FLOOR_DB = {"int8": 35, "bf16": 55}
PEER_FLOOR_DB = 30


def psnr_db(y: np.ndarray, reference: np.ndarray) -> float:
    return 10 * np.log10(1 / max(float(np.mean((y - reference) ** 2)), 1e-12))


def record(benchmark, model, engine, precision, width, height, threads, vs_fp32, set5):
    benchmark.group = precision_group(model, width, height)
    benchmark.extra_info.update(
        kind="precision", model=model, engine=engine, precision=precision, width=width,
        height=height, threads=threads, psnr_vs_fp32=vs_fp32, set5_psnr=set5,
    )  # fmt: skip


@pytest.mark.parametrize("precision", ["fp32", "int8", "bf16"])
@pytest.mark.parametrize("model", MODELS)
def test_precision_speed(benchmark, timed, quick, threads, model, precision):
    from fastsr.api import Upscaler
    from fastsr.backends import get_backend

    if precision not in get_backend("cpu").precisions():
        pytest.skip(f"the cpu backend runs no {precision} here")
    graph = load(model)
    if precision == "int8" and "int8" not in graph.meta:
        pytest.skip(f"{model} ships no int8 calibration (python -m fastsr.quantize)")
    height, width = (36, 64) if quick else (360, 640)
    x = natural_frame(height, width, graph.input_channels)
    engine = Engine(graph, "cpu", precision, threads=threads)
    y, first = first_call(engine.run, x)
    vs_fp32 = None
    if precision != "fp32":
        vs_fp32 = psnr_db(y, Engine(graph, "cpu", "fp32", threads=threads).run(x))
        assert vs_fp32 > FLOOR_DB[precision], f"{model} {precision} strays: {vs_fp32:.1f} dB"
    upscaler = Upscaler(graph, backend="cpu", precision=precision, threads=threads)
    # Set5 is the full run's: quick mode is a smoke check.
    set5 = None if quick else set5_psnr(upscaler, int(graph.meta["scale"]))
    record(benchmark, model, "fastsr", precision, width, height, threads, vs_fp32, set5)
    timed(engine.run, x, first)


@pytest.mark.parametrize("peer", sorted(PEERS))
@pytest.mark.parametrize("model", MODELS)
def test_peer_precision_speed(benchmark, timed, quick, threads, model, peer):
    reason = unavailable(peer)
    if reason:
        pytest.skip(reason)
    if model not in network_specs():
        pytest.skip(f"{model} not selected (FASTSR_BENCH_MODELS)")
    graph = load(model)
    run = make_peer(peer, build_network(model), graph, threads)
    height, width = (36, 64) if quick else (360, 640)
    x = natural_frame(height, width, graph.input_channels)
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    y, first = first_call(run, x_nchw)
    reference = Engine(graph, "cpu", "fp32", threads=threads).run(x)
    vs_fp32 = psnr_db(np.asarray(y).transpose(0, 2, 3, 1), reference)
    assert vs_fp32 > PEER_FLOOR_DB, f"{model} {peer} strays from fp32: {vs_fp32:.1f} dB"
    set5 = None if quick else set5_psnr(peer_upscaler(graph, run), int(graph.meta["scale"]))
    engine, precision, _ = PEERS[peer]
    record(benchmark, model, engine, precision, width, height, threads, vs_fp32, set5)
    timed(run, x_nchw, first)

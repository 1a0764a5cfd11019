"""Post-training int8 (fastsr/quantize.py) and the CPU backend's int8 programs."""

from __future__ import annotations

import numpy as np
import pytest

from fastsr.backends import get_backend
from fastsr.engine import Engine, make_plan
from fastsr.graph import load
from fastsr.quantize import (
    INT8_WEIGHT_MAX,
    calibrate,
    default_int8_layers,
    quantize_weight,
    scale_and_zero,
    value_range,
)


def smooth_images(count, h, w, channels, seed=0):
    """Blurred noise in [0, 1]: image-like statistics without reading image files."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        x = rng.random((h + 4, w + 4, channels))
        x = sum(x[i : i + h, j : j + w] for i in range(5) for j in range(5)) / 25
        out.append(np.ascontiguousarray(((x - 0.5) * 3 + 0.5).clip(0, 1)[None], np.float32))
    return out


def test_quantize_weight_per_output_channel():
    w = np.array([[1.0, -0.6, 0.25], [0.0, 0.0, 0.0], [-2.0, 1.1, 0.01]], np.float32)
    q, scale = quantize_weight(w.reshape(3, 3, 1, 1))
    np.testing.assert_allclose(scale, [1 / 63, 1.0, 2 / 63], rtol=1e-6)
    np.testing.assert_array_equal(q.reshape(3, 3), [[63, -38, 16], [0, 0, 0], [-63, 35, 0]])
    assert q.dtype == np.int8 and np.abs(q).max() <= INT8_WEIGHT_MAX


def test_scale_and_zero_cover_the_range_and_zero():
    assert scale_and_zero(0.0, 2.55) == pytest.approx((0.01, 0))
    scale, zero = scale_and_zero(-1.0, 1.55)
    assert scale == pytest.approx(0.01) and zero == 100
    assert scale_and_zero(0.5, 1.0) == pytest.approx((1.0 / 255, 0))  # widened to hold 0


def test_value_range_estimators():
    values = np.concatenate([np.linspace(0, 1, 100_000), [50.0]]).astype(np.float32)
    assert value_range(values, "max") == (0.0, 50.0)
    assert value_range(values, "percentile")[1] < 1.01
    assert value_range(values, "mse")[1] < 50.0
    with pytest.raises(ValueError, match="estimator"):
        value_range(values, "median")


def uncalibrated(name: str):
    graph = load(name)
    graph.meta.pop("int8", None)  # shipped graphs carry their own calibration
    return graph


@pytest.fixture(scope="module")
def fast_x2_int8():
    graph = uncalibrated("fast_x2")
    return graph, calibrate(graph, smooth_images(4, 48, 48, 1), "percentile")


def test_calibration_annotates_the_int8_layers(fast_x2_int8):
    graph, calibrated = fast_x2_int8
    meta = calibrated.meta["int8"]
    convs = [n.output for n in graph.nodes]
    # every conv but the first, which reads the image (the output conv included)
    assert meta["layers"] == default_int8_layers(graph) == convs[1:]
    assert set(meta["activations"]) == set(convs[:-1])
    assert "int8" not in graph.meta  # calibrate returns a copy


def test_int8_program_is_close_to_the_torch_reference(fast_x2_int8):
    graph, calibrated = fast_x2_int8
    x = smooth_images(1, 40, 56, 1, seed=5)[0]
    want = Engine(graph, "reference").run(x)
    got = Engine(calibrated, "cpu", "int8", threads=2).run(x)
    psnr = 10 * np.log10(1 / np.mean((got - want) ** 2))
    assert got.shape == want.shape and psnr > 45


def test_int8_needs_a_calibrated_graph():
    assert "int8" in get_backend("cpu").precisions()
    with pytest.raises(ValueError, match="fastsr quantize"):
        Engine(uncalibrated("fast_x2"), "cpu", "int8").run(np.zeros((1, 8, 8, 1), np.float32))


def test_int8_plan_bytes_are_what_the_program_allocates(fast_x2_int8):
    _, calibrated = fast_x2_int8
    backend = get_backend("cpu")
    plan = make_plan(calibrated, 1, 20, 28)
    assert (
        backend.plan_bytes(calibrated, plan, "int8", 2)
        == backend.compile(calibrated, plan, "int8", 2).nbytes
    )


def test_calibrate_rejects_bad_layers():
    graph = uncalibrated("fast_x2")
    with pytest.raises(ValueError, match="not conv outputs"):
        calibrate(graph, smooth_images(1, 16, 16, 1), layers=["nope"])


def test_auto_picks_int8_only_within_the_budget(fast_x2_int8):
    from fastsr.quantize import auto_precision

    _, calibrated = fast_x2_int8
    cpu = get_backend("cpu")
    assert auto_precision(load("fast_x2"), get_backend("reference")) == "fp32"
    cheap, costly = calibrated.copy(), calibrated.copy()
    for graph in (cheap, costly):
        graph.meta.pop("bf16", None)  # int8 alone (bf16's turn: test_bf16_kernels)
    cheap.meta["int8"]["psnr_cost_db"] = 0.02
    costly.meta["int8"]["psnr_cost_db"] = 0.5
    assert auto_precision(cheap, cpu) == "int8" and auto_precision(costly, cpu) == "fp32"
    assert Engine(cheap, "cpu", "auto").precision == "int8"


def test_auto_leaves_int8_alone_where_its_kernels_lose_to_fp32(fast_x2_int8):
    from fastsr import _C
    from fastsr.quantize import auto_precision

    _, calibrated = fast_x2_int8
    calibrated = calibrated.copy()
    calibrated.meta.pop("bf16", None)
    calibrated.meta["int8"]["psnr_cost_db"] = 0.02
    before = _C.simd_level()
    _C.set_simd_level("portable")  # int8 kernels without dot products
    try:
        assert _C.int8_isa() == "portable"
        assert auto_precision(calibrated, get_backend("cpu")) == "fp32"
    finally:
        _C.set_simd_level(before)


@pytest.mark.parametrize("isa", ["amx", "avx512vnni", "avxvnni", "avx2"])
def test_auto_takes_int8_over_winograd_convs_where_its_dot_products_win(isa):
    """quality_x2's 64-channel body runs as Winograd in fp32. Measured (docs/BENCHMARKS.md,
    int8 by family, int8 Winograd): int8 convs beat it on AMX tiles, AVX-512 VNNI (Intel's
    and Zen 4's) and AVX-VNNI, with AVX2's vpmaddubsw only as int8 Winograd (so only with the
    calibration's taps); fast_x2 has no Winograd conv to lose to."""
    from fastsr import _C
    from fastsr.quantize import AUTO_BUDGET_DB, auto_precision

    if isa not in _C.supported_int8_isas():
        pytest.skip(f"int8 {isa} not supported by this CPU")
    quality = load("quality_x2")
    quality.meta.pop("bf16", None)
    assert quality.meta["int8"]["psnr_cost_db"] <= AUTO_BUDGET_DB
    _C.set_int8_isa(isa)
    try:
        cpu = get_backend("cpu")
        assert auto_precision(quality, cpu) == "int8"
        direct = quality.copy()
        direct.meta["int8"] = {k: v for k, v in quality.meta["int8"].items() if k != "winograd"}
        assert auto_precision(direct, cpu) == ("fp32" if isa == "avx2" else "int8")
        fast = load("fast_x2")
        fast.meta.pop("bf16", None)  # int8 alone (bf16's turn: test_bf16_kernels)
        assert auto_precision(fast, cpu) == "int8"
    finally:
        _C.set_int8_isa(None)


def test_cli_quantize_writes_a_loadable_int8_model(tmp_path):
    from PIL import Image

    from fastsr.api import Upscaler
    from fastsr.cli import main

    pictures = tmp_path / "calib"
    pictures.mkdir()
    for i, image in enumerate(smooth_images(2, 64, 80, 3)):
        Image.fromarray((image[0] * 255).astype(np.uint8)).save(pictures / f"{i}.png")
    out = tmp_path / "fast_int8.safetensors"
    args = ["quantize", "fast_x2", "--calibration", str(pictures), "-o", str(out), "--images", "2"]
    assert main(args) == 0
    assert main(args) != 0  # exists, no --overwrite
    graph = load(str(out))
    assert graph.meta["int8"]["calibration"]["images"] == 2
    lr = (smooth_images(1, 20, 24, 3, seed=9)[0][0] * 255).astype(np.uint8)
    sr = Upscaler(str(out), backend="cpu", precision="int8")(lr)
    want = Upscaler("fast_x2", backend="cpu")(lr)
    assert sr.shape == want.shape == (40, 48, 3)
    assert np.abs(sr.astype(int) - want.astype(int)).max() <= 3


def test_shipped_fast_models_carry_a_calibration_within_the_auto_budget():
    from fastsr.quantize import AUTO_BUDGET_DB

    for name in ("fast_x2", "fast_x4"):
        meta = load(name).meta["int8"]
        assert meta["estimator"] == "mse" and meta["calibration"]["images"] == 16
        assert meta["psnr_cost_db"] <= AUTO_BUDGET_DB

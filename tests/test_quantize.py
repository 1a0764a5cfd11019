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


@pytest.fixture(scope="module")
def fast_x2_int8():
    graph = load("fast_x2")
    return graph, calibrate(graph, smooth_images(4, 48, 48, 1), "percentile")


def test_calibration_annotates_the_int8_layers(fast_x2_int8):
    graph, calibrated = fast_x2_int8
    meta = calibrated.meta["int8"]
    convs = [n.output for n in graph.nodes]
    assert meta["layers"] == default_int8_layers(graph) == convs[1:-1]
    assert set(meta["activations"]) == set(convs[:-2])
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
        Engine(load("fast_x2"), "cpu", "int8").run(np.zeros((1, 8, 8, 1), np.float32))


def test_int8_plan_bytes_are_what_the_program_allocates(fast_x2_int8):
    _, calibrated = fast_x2_int8
    backend = get_backend("cpu")
    plan = make_plan(calibrated, 1, 20, 28)
    assert backend.plan_bytes(calibrated, plan, "int8", 2) == backend.compile(
        calibrated, plan, "int8", 2
    ).nbytes


def test_calibrate_rejects_bad_layers():
    graph = load("fast_x2")
    with pytest.raises(ValueError, match="not conv outputs"):
        calibrate(graph, smooth_images(1, 16, 16, 1), layers=["nope"])

"""Serialised graphs: round trips, the shipped files against a fresh rebuild, hostile files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_cases import OP_CASES, build_case, case_size
from safetensors.numpy import save_file

from fastsr.backends.reference import run_graph
from fastsr.engine import Engine
from fastsr.graph import load
from fastsr.graph.from_torch import capture
from fastsr.graph.ir import Graph
from fastsr.graph.passes import optimize
from fastsr.graph.serialize import FORMAT, VERSION, load_graph, save_graph
from fastsr.graph.shipped import SHIPPED_DIR, graph_path, rebuild_graph, shipped
from fastsr.models.zoo import load_module

SHIPPED = sorted(shipped())


def _assert_same_graph(got: Graph, expected: Graph) -> None:
    assert (got.input, got.input_channels, got.output) == (
        expected.input, expected.input_channels, expected.output
    )
    assert got.nodes == expected.nodes
    assert got.meta == expected.meta
    assert got.params.keys() == expected.params.keys()
    for name, value in expected.params.items():
        assert got.params[name].dtype == value.dtype and got.params[name].shape == value.shape
        assert got.params[name].tobytes() == value.tobytes(), name


def _input(channels: int, case: str = "") -> torch.Tensor:
    h, w = case_size(case, 11, 9)
    return torch.rand(2, channels, h, w, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("optimized", [False, True], ids=["captured", "optimized"])
@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_round_trip_keeps_nodes_params_and_output(case, optimized, tmp_path):
    module, channels = build_case(case)
    graph = capture(module, channels, meta={"name": case, "scale": 2, "tags": ["a", 1]})
    graph = optimize(graph) if optimized else graph
    loaded = load_graph(save_graph(graph, tmp_path / "g.graph.safetensors"))
    _assert_same_graph(loaded, graph)
    x = _input(channels, case)
    with torch.no_grad():
        torch.testing.assert_close(run_graph(loaded, x), module(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_optimize_is_idempotent(case):
    module, channels = build_case(case)
    once = optimize(capture(module, channels))
    _assert_same_graph(optimize(once), once)


# -- the shipped files ----------------------------------------------------------------------
def test_every_shipped_model_has_a_graph_file():
    assert SHIPPED, f"no shipped models found in {SHIPPED_DIR}"
    missing = [name for name in SHIPPED if not graph_path(shipped()[name]).is_file()]
    assert not missing, f"run `python -m fastsr.graph.shipped` to write graphs for {missing}"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_graph_file_equals_a_fresh_rebuild(name):
    """Catches a graph file left stale by new weights or a changed frontend or pass."""
    json_path = shipped()[name]
    stored = load(name)
    rebuilt = rebuild_graph(json_path)
    _assert_same_graph(stored, rebuilt)
    _assert_same_graph(optimize(stored), stored)  # Engine's optimize leaves it unchanged
    module, config = load_module(json_path)
    x = _input(stored.input_channels)
    with torch.no_grad():
        assert torch.equal(run_graph(stored, x), run_graph(rebuilt, x))
        torch.testing.assert_close(run_graph(stored, x), module(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["fast", "quality_x4"])
def test_engine_runs_a_loaded_graph_like_the_module(name):
    graph = load(name)
    module, _ = load_module(graph.meta["name"])
    x = _input(graph.input_channels)
    got = Engine(graph, "reference").run(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    with torch.no_grad():
        torch.testing.assert_close(got, module(x), atol=1e-4, rtol=0)


def test_loading_shipped_models_imports_neither_torch_nor_onnx_nor_the_models():
    code = """
import sys
import fastsr.graph
for name in ("fast", "quality_x4"):
    graph = fastsr.graph.load(name)
    assert graph.meta["scale"] in (2, 4), graph.meta
assert fastsr.graph.shipped_models()
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx")
             or m.startswith("fastsr.models") or m == "fastsr.graph.from_weights"))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- bad files --------------------------------------------------------------------------------
def _small_graph() -> Graph:
    module, channels = build_case("residual_block")
    return optimize(capture(module, channels, meta={"name": "residual_block"}))


def _write(path, params: dict, ir, key: str = FORMAT) -> None:
    save_file(params, str(path), metadata={key: json.dumps(ir)})


def _ir_and_params() -> tuple[dict, dict]:
    """The header a file of `_small_graph()` holds, written out by hand, and its params."""
    graph = _small_graph()
    ir = {"version": VERSION, "input": graph.input, "input_channels": graph.input_channels,
          "output": graph.output, "nodes": [vars(node) for node in graph.nodes],
          "meta": graph.meta}
    return json.loads(json.dumps(ir)), dict(graph.params)


def _tamper(ir: dict, params: dict, change: str) -> tuple[dict, dict]:
    first = ir["nodes"][0]
    weight = first["attrs"]["weight"]
    if change == "missing param":
        params.pop(weight)
    elif change == "float64 param":
        params[weight] = params[weight].astype(np.float64)
    elif change == "nan param":
        params[weight] = np.full_like(params[weight], np.nan)
    elif change == "unused param":
        params["stray"] = np.zeros(3, np.float32)
    elif change == "reshaped param":
        params[weight] = params[weight].reshape(-1)
    elif change == "string stride":
        first["attrs"]["stride"] = "wide"
    elif change == "zero stride":
        first["attrs"]["stride"] = [0, 0]
    elif change == "nested attr":
        first["attrs"]["padding"] = [[1], [1]]
    elif change == "unknown op":
        first["op"] = "softmax"
    elif change == "node without output":
        del first["output"]
    elif change == "undefined input":
        first["inputs"] = ["nowhere"]
    elif change == "bool channels":
        ir["input_channels"] = True
    elif change == "list header":
        ir = [ir]
    return ir, params


@pytest.mark.parametrize(
    "change",
    ["missing param", "float64 param", "nan param", "unused param", "reshaped param",
     "string stride", "zero stride", "nested attr", "unknown op", "node without output",
     "undefined input", "bool channels", "list header"],
)
def test_tampered_graph_is_a_value_error_naming_the_file(change, tmp_path):
    ir, params = _tamper(*_ir_and_params(), change)
    path = tmp_path / "bad.graph.safetensors"
    _write(path, params, ir)
    with pytest.raises(ValueError, match="bad.graph.safetensors"):
        load_graph(path)


@pytest.mark.parametrize(
    "version,key,message",
    [
        (VERSION + 1, FORMAT, "newer than this fastsr reads"),
        (VERSION - 1, FORMAT, "older than this fastsr reads"),
        ("1", FORMAT, "has no format version"),
        (None, FORMAT, "has no format version"),
        (VERSION, "something.else", "not a fastsr graph file"),
    ],
)
def test_wrong_format_or_version_says_so(version, key, message, tmp_path):
    ir, params = _ir_and_params()
    ir["version"] = version
    path = tmp_path / "g.graph.safetensors"
    _write(path, params, ir, key)
    with pytest.raises(ValueError, match=message):
        load_graph(path)


def test_weights_file_is_not_a_graph_file(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"conv.weight": np.zeros((1, 1, 3, 3), np.float32)}, str(path))
    with pytest.raises(ValueError, match="not a fastsr graph file"):
        load_graph(path)


@pytest.mark.parametrize("content", [b"", b"not safetensors at all", b"\xff" * 64],
                         ids=["empty", "text", "garbage"])
def test_unreadable_file_is_a_value_error(content, tmp_path):
    path = tmp_path / "g.graph.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="g.graph.safetensors"):
        load_graph(path)


def test_truncated_file_is_a_value_error(tmp_path):
    path = save_graph(_small_graph(), tmp_path / "g.graph.safetensors")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="g.graph.safetensors"):
        load_graph(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_graph(tmp_path / "nothing.graph.safetensors")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_flipped_bytes_load_a_valid_graph_or_raise_value_error(data, tmp_path):
    path = tmp_path / "g.graph.safetensors"
    if not path.exists():
        save_graph(_small_graph(), path)
    original = path.read_bytes()
    corrupted = bytearray(original)
    # Most flips land in the header (the IR), the part the loader has to check.
    header_end = 8 + int.from_bytes(original[:8], "little")
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, header_end + 64))
        corrupted[at] ^= data.draw(st.integers(1, 255))
    bad = tmp_path / "bad.graph.safetensors"
    bad.write_bytes(bytes(corrupted))
    try:
        graph = load_graph(bad)
    except ValueError as error:
        assert "bad.graph.safetensors" in str(error)
    else:
        graph.validate()


# -- saving -----------------------------------------------------------------------------------
def test_save_refuses_meta_that_is_not_json_and_leaves_no_file(tmp_path):
    graph = _small_graph()
    graph.meta["module"] = object()
    path = tmp_path / "g.graph.safetensors"
    with pytest.raises(ValueError, match="JSON"):
        save_graph(graph, path)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_an_attr_that_json_cannot_hold(tmp_path):
    graph = _small_graph()
    graph.nodes[0].attrs["groups"] = np.int64(1)
    with pytest.raises(ValueError, match="groups"):
        save_graph(graph, tmp_path / "g.graph.safetensors")


def test_fastsr_load_reads_a_saved_graph_by_its_path(tmp_path):
    module, channels = build_case("shuffle_bicubic_skip")
    graph = optimize(capture(module, channels, meta={"name": "tail"}))
    path = save_graph(graph, tmp_path / "tail.safetensors")  # any name: the header says
    loaded = load(str(path))
    assert (loaded.meta["name"], loaded.meta["scale"], loaded.meta["color"]) == ("tail", 2, "rgb")
    assert loaded.nodes == graph.nodes

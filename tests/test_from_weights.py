"""Loading models from shipped names, weight files, ONNX files and modules; hostile files."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from op_cases import randomize_batchnorm
from safetensors.torch import save_file

from fastsr.backends.reference import run_graph
from fastsr.graph import load, shipped, shipped_models
from fastsr.graph.from_torch import capture
from fastsr.graph.ir import GraphError
from fastsr.graph.onnx_export import export_onnx
from fastsr.models import build_model

# torch's TorchScript exporter (dynamo=False) warns that it is legacy; it needs no onnxscript.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Small versions of each architecture and block type, so that every test runs in a blink.
ZOO = {
    "quality_x2": ("srnet", {"scale": 2, "channels": 8, "blocks": 2, "color": "rgb"}),
    "quality_x4": ("srnet", {"scale": 4, "channels": 8, "blocks": 1, "color": "rgb"}),
    "fast_x2": ("fastnet", {"scale": 2, "widths": [8, 6], "color": "y"}),
}
NETWORKS = {
    "srnet_residual_rgb_x2": ("srnet", {"scale": 2, "channels": 8, "blocks": 2, "color": "rgb"}),
    "srnet_attention_y_x3": (
        "srnet",
        {"scale": 3, "channels": 8, "blocks": 1, "color": "y", "block": "attention"},
    ),
    "srnet_dense_rgb_x4": (
        "srnet",
        {"scale": 4, "channels": 8, "blocks": 2, "color": "rgb", "block": "dense"},
    ),
    "fastnet_y_x3": ("fastnet", {"scale": 3, "widths": [8, 6, 4], "color": "y"}),
    "fastnet_rgb_x2": ("fastnet", {"scale": 2, "widths": [6], "color": "rgb"}),
}


def _module(architecture: str, args: dict):
    torch.manual_seed(len(json.dumps(args)))
    return randomize_batchnorm(build_model(architecture, **args))


def _assert_matches_eager(graph, module, channels: int) -> None:
    x = torch.rand(2, channels, 11, 9, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(run_graph(graph, x), module(x), atol=1e-5, rtol=0)


def _write_config(directory, name, architecture, args, **extra):
    config = {
        "name": name,
        "architecture": architecture,
        "args": args,
        "scale": args["scale"],
        "color": args["color"],
        **extra,
    }
    (directory / f"{name}.json").write_text(json.dumps(config))


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """A shipped-weights folder like the trainer writes (weights, config, serialised graph),
    with the modules it holds."""
    modules = {}
    for name, (architecture, args) in ZOO.items():
        module = modules[name] = _module(architecture, args)
        save_file(module.state_dict(), tmp_path / f"{name}.safetensors")
        _write_config(
            tmp_path,
            name,
            architecture,
            args,
            params=123,
            macs_per_input_pixel=4567.0,
            validation={"Set5": {"psnr": 37.5, "ssim": 0.95}},
        )
        shipped.export_graph(tmp_path / f"{name}.json")
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path)
    return modules


# -- shipped names ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model,scale,expected",
    [
        ("quality", None, "quality_x2"),
        ("quality", 4, "quality_x4"),
        ("fast", 2, "fast_x2"),
        ("quality_x4", None, "quality_x4"),
        ("quality_x2", 2, "quality_x2"),
    ],
)
def test_shipped_name_loads_the_model_for_its_scale(zoo, model, scale, expected):
    graph = load(model, scale)
    architecture, args = ZOO[expected]
    assert graph.meta["name"] == expected
    assert graph.meta["scale"] == args["scale"] and graph.meta["color"] == args["color"]
    _assert_matches_eager(graph, zoo[expected], graph.input_channels)


def test_shipped_model_without_a_graph_file_is_rebuilt_from_its_weights(zoo):
    shipped.graph_path(shipped.SHIPPED_DIR / "quality_x4.json").unlink()
    graph = load("quality", 4)
    assert graph.meta["name"] == "quality_x4"
    _assert_matches_eager(graph, zoo["quality_x4"], 3)


def test_unknown_name_lists_the_shipped_models(zoo):
    with pytest.raises(ValueError, match="fast_x2, quality_x2, quality_x4"):
        load("medium")


@pytest.mark.parametrize(
    "model,scale,message",
    [
        ("quality", 3, "has scales x2, x4, not x3"),
        ("fast", 4, "has scales x2, not x4"),
        ("quality_x2", 4, "upscales x2, not x4"),
    ],
)
def test_scale_the_model_does_not_have_names_its_scales(zoo, model, scale, message):
    with pytest.raises(ValueError, match=message):
        load(model, scale)


def test_shipped_models_summarise_each_model(zoo):
    summaries = {s["name"]: s for s in shipped_models()}
    assert sorted(summaries) == sorted(ZOO)
    assert summaries["fast_x2"] == {
        "name": "fast_x2",
        "tier": "fast",
        "scale": 2,
        "color": "y",
        "params": 123,
        "macs_per_input_pixel": 4567.0,
        "psnr": {"Set5": 37.5},
    }


# -- every kind of path, and modules ------------------------------------------------------
def _state_dict_file(module, path, wrap: str | None):
    state = module.state_dict()
    if wrap == "module.":
        state = {f"module.{k}": v for k, v in state.items()}
    elif wrap is not None:
        state = {wrap: state, "epoch": 7, "optimizer": {"lr": torch.tensor(1e-3)}}
    torch.save(state, path)


@pytest.mark.parametrize("wrap", [None, "state_dict", "params", "model_state_dict", "module."])
@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_plain_state_dict_is_recognised_and_matches_eager(network, wrap, tmp_path):
    architecture, args = NETWORKS[network]
    module = _module(architecture, args)
    _state_dict_file(module, tmp_path / "net.pth", wrap)
    graph = load(tmp_path / "net.pth")
    assert graph.meta["architecture"] == architecture
    assert graph.meta["scale"] == args["scale"]
    _assert_matches_eager(graph, module, graph.input_channels)


@pytest.mark.parametrize("with_config", [True, False], ids=["with_json", "bare"])
@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_safetensors_loads_with_or_without_its_config(network, with_config, tmp_path):
    architecture, args = NETWORKS[network]
    module = _module(architecture, args)
    save_file(module.state_dict(), tmp_path / "net.safetensors")
    if with_config:
        _write_config(tmp_path, "net", architecture, args)
    graph = load(str(tmp_path / "net.safetensors"), scale=args["scale"])
    _assert_matches_eager(graph, module, graph.input_channels)


def test_onnx_file_loads_with_its_meta_or_derives_it(tmp_path):
    module = _module(*NETWORKS["srnet_attention_y_x3"])
    export_onnx(
        capture(module, 1, meta={"name": "ours", "scale": 3, "color": "y"}), tmp_path / "ours.onnx"
    )
    torch.onnx.export(
        module,
        torch.rand(1, 1, 8, 8),
        str(tmp_path / "torch.onnx"),
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}},
    )
    for name in ("ours", "torch"):
        graph = load(tmp_path / f"{name}.onnx")
        assert {k: graph.meta[k] for k in ("name", "scale", "color")} == {
            "name": name,
            "scale": 3,
            "color": "y",
        }
        _assert_matches_eager(graph, module, 1)


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_module_is_captured_with_scale_and_color_derived(network):
    architecture, args = NETWORKS[network]
    module = _module(architecture, args)
    graph = load(module)
    assert graph.meta["scale"] == args["scale"]
    assert graph.meta["color"] == args["color"]
    _assert_matches_eager(graph, module, graph.input_channels)


def test_module_that_is_not_an_image_model_is_rejected():
    with pytest.raises(GraphError, match="maps 8 to 8"):
        load(torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1)))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        load(42)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".pt", ".onnx", ".PTH"])
def test_missing_file_raises_file_not_found(suffix, tmp_path):
    with pytest.raises(FileNotFoundError):
        load(str(tmp_path / f"absent{suffix}"))


# -- wrong, unknown and hostile files -----------------------------------------------------
class _WritesMarker:
    """Unpickling this calls open(marker, "w"): proof that code ran if the marker exists."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("container", ["torch_zip", "raw_pickle"])
def test_pickle_that_would_run_code_is_refused_without_running_it(container, tmp_path):
    marker, path = tmp_path / "marker", tmp_path / "evil.pth"
    payload = {"state_dict": {"head.0.weight": _WritesMarker(marker)}}
    if container == "torch_zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(ValueError, match="not a loadable state_dict"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_random_bytes_are_refused(suffix, tmp_path):
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(np.random.default_rng(1).bytes(2048))
    with pytest.raises(ValueError, match="not a"):
        load(path)


def test_truncated_safetensors_is_refused(tmp_path):
    module = _module(*NETWORKS["srnet_residual_rgb_x2"])
    save_file(module.state_dict(), tmp_path / "full.safetensors")
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load(tmp_path / "cut.safetensors")


def test_weights_with_wrong_shapes_for_the_config_are_refused(tmp_path):
    module = _module("srnet", {"scale": 2, "channels": 8, "blocks": 1})
    save_file(module.state_dict(), tmp_path / "net.safetensors")
    _write_config(
        tmp_path, "net", "srnet", {"scale": 2, "channels": 16, "blocks": 1, "color": "rgb"}
    )
    with pytest.raises(ValueError, match=r"do not fit srnet\(scale=2, channels=16"):
        load(tmp_path / "net.safetensors")


def test_config_that_contradicts_the_network_is_refused(tmp_path):
    module = _module("fastnet", {"scale": 2, "widths": [4], "color": "y"})
    save_file(module.state_dict(), tmp_path / "net.safetensors")
    _write_config(tmp_path, "net", "fastnet", {"scale": 2, "widths": [4], "color": "y"})
    config = json.loads((tmp_path / "net.json").read_text()) | {"scale": 4}
    (tmp_path / "net.json").write_text(json.dumps(config))
    with pytest.raises(GraphError, match="config says scale 4"):
        load(tmp_path / "net.safetensors")


def test_malformed_config_is_refused(tmp_path):
    save_file({"w": torch.zeros(1)}, tmp_path / "net.safetensors")
    (tmp_path / "net.json").write_text('{"architecture": "srnet"')
    with pytest.raises(ValueError, match="not a readable model config"):
        load(tmp_path / "net.safetensors")
    (tmp_path / "net.json").write_text('{"architecture": "srnet", "args": {}}')
    with pytest.raises(ValueError, match=r"lacks \['scale', 'color'\]"):
        load(tmp_path / "net.safetensors")


def test_unknown_layout_says_what_it_found(tmp_path):
    torch.save({"encoder.weight": torch.zeros(4, 3, 3, 3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"not one fastsr knows.*encoder.weight \[4, 3, 3, 3\]"):
        load(tmp_path / "other.pth")


def test_near_miss_layout_names_the_architecture_and_the_difference(tmp_path):
    state = _module(*NETWORKS["srnet_residual_rgb_x2"]).state_dict()
    del state["body.1.body.3.weight"]
    torch.save(state, tmp_path / "damaged.pth")
    with pytest.raises(ValueError, match=r"looks like srnet\(.*missing \['body.1.body.3.weight'"):
        load(tmp_path / "damaged.pth")


def test_file_that_holds_no_state_dict_is_refused(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="expected a state_dict"):
        load(tmp_path / "list.pt")

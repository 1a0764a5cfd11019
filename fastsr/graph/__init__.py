"""Graph frontends behind one entry point: `load(model, scale)` -> Graph.

Imports of torch, onnx and the models package happen inside the functions, because
importing any `fastsr.graph` submodule (the IR is plain numpy) runs this file first.
Shipped models and saved graphs need none of them (`shipped`, `serialize`).
"""

from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path

from fastsr.graph.ir import GLOBAL, Graph, GraphError

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".onnx")
DEFAULT_SCALE = 2  # what a tier name ("quality", "fast") means without a scale
_ZOO_NAME = re.compile(r"(?P<tier>.+)_x(?P<scale>\d+)")
_COLORS = {1: "y", 3: "rgb"}


def load(model, scale: int | None = None) -> Graph:
    """The Graph for `model`, with meta["scale"] (int) and meta["color"] ("rgb" or "y").

    `model` is a shipped model's name ("quality", "fast" or a full name such as
    "quality_x4"; `scale` picks `<tier>_x<scale>`), a path to a `.safetensors` (weights,
    or a graph saved by `fastsr.graph.serialize.save_graph`), `.pth`, `.pt` or `.onnx`
    file, or a `torch.nn.Module` taking 1 (Y) or 3 (RGB) channels. Shipped models and
    saved graphs load without torch.
    ValueError for an unknown name or a scale the model does not have;
    FileNotFoundError for a missing file.
    """
    names_a_file = isinstance(model, str) and (
        Path(model).suffix.lower() in WEIGHT_SUFFIXES or os.sep in model
    )
    if isinstance(model, os.PathLike) or names_a_file:
        graph = _load_file(Path(model))
    elif isinstance(model, str):
        graph = _load_shipped(model, scale)
    else:
        graph = _capture_module(model)
    _complete_meta(graph)
    if scale is not None and scale != graph.meta["scale"]:
        raise ValueError(
            f"model {graph.meta.get('name', model)!r} upscales x{graph.meta['scale']}, "
            f"not x{scale}"
        )
    return graph


def shipped_models() -> list[dict]:
    """One summary per shipped model: name, tier, scale, color, params, MACs/pixel, PSNR."""
    from fastsr.graph.shipped import load_config, shipped

    summaries = []
    for name, json_path in sorted(shipped().items()):
        config = load_config(json_path)
        summaries.append({
            "name": name,
            "tier": _ZOO_NAME.fullmatch(name)["tier"] if _ZOO_NAME.fullmatch(name) else name,
            "scale": config["scale"],
            "color": config["color"],
            "params": config.get("params"),
            "macs_per_input_pixel": config.get("macs_per_input_pixel"),
            "psnr": {dataset: scores["psnr"]
                     for dataset, scores in config.get("validation", {}).items()},
        })
    return summaries


def _load_shipped(name: str, scale: int | None) -> Graph:
    from fastsr.graph.shipped import load_shipped, shipped

    models = shipped()
    if name in models:
        return load_shipped(models[name])
    scales = sorted(int(m["scale"]) for m in map(_ZOO_NAME.fullmatch, models)
                    if m and m["tier"] == name)
    if not scales:
        known = ", ".join(sorted(models)) or "none are installed"
        raise ValueError(f"unknown model {name!r}; shipped models: {known}")
    wanted = DEFAULT_SCALE if scale is None else scale
    if wanted not in scales:
        raise ValueError(
            f"model {name!r} has scales {', '.join(f'x{s}' for s in scales)}, not x{wanted}"
        )
    return load_shipped(models[f"{name}_x{wanted}"])


def _load_file(path: Path) -> Graph:
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    if path.suffix.lower() == ".onnx":
        from fastsr.graph.onnx_import import import_onnx

        graph = import_onnx(path)
        graph.meta.setdefault("name", path.stem)
        return graph
    from fastsr.graph.serialize import is_graph_file, load_graph

    if path.suffix.lower() == ".safetensors" and is_graph_file(path):
        return load_graph(path)
    from fastsr.graph.from_weights import load_weights

    return load_weights(path)


def _capture_module(module) -> Graph:
    from torch import nn

    from fastsr.graph.from_torch import capture

    if not isinstance(module, nn.Module):
        raise TypeError(
            f"model must be a shipped model's name, a path or a torch.nn.Module, "
            f"got {type(module).__name__}"
        )
    first_conv = next(
        (m for m in module.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)), None
    )
    if first_conv is None:
        raise ValueError(f"{type(module).__name__} has no convolution to take its channels from")
    return capture(module, first_conv.in_channels, meta={"name": type(module).__name__})


def _complete_meta(graph: Graph) -> None:
    """Derive scale and colour from the graph's shapes; they must agree with any meta given."""
    shapes = graph.shapes()
    out = shapes[graph.output]
    where = graph.meta.get("name", "model")
    if out.scale == GLOBAL or Fraction(out.scale).denominator != 1 or out.scale < 1:
        raise GraphError(f"{where}: output is not a whole-number upscale of the input")
    color = _COLORS.get(graph.input_channels)
    if color is None or out.channels != graph.input_channels:
        raise GraphError(
            f"{where}: an image model maps 1 (Y) or 3 (RGB) channels to as many; this one "
            f"maps {graph.input_channels} to {out.channels}"
        )
    derived = {"scale": int(out.scale), "color": color}
    for key, value in derived.items():
        if graph.meta.setdefault(key, value) != value:
            raise GraphError(f"{where}: config says {key} {graph.meta[key]!r}, network has "
                             f"{value!r}")

"""Weight files -> Graph, without executing anything stored in them.

Every architecture is defined once, in PyTorch (`fastsr.models`): a weight file is loaded
into that module and the module is captured with `from_torch.capture`. The models package
is imported only here, when a weight file needs its architecture.

- `<name>.safetensors` + `<name>.json` (the shipped zoo): the JSON names the architecture
  and its arguments.
- A plain state_dict (`.pth` / `.pt`, read with `torch.load(weights_only=True)`) or a
  `.safetensors` without a JSON: the architecture and its arguments are recognised from
  the tensor names and shapes. Settings that leave no trace in the shapes (SRNet's
  dilation) take their defaults; ship a JSON config to set them.
"""

from __future__ import annotations

import math
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import torch

from fastsr.graph.from_torch import capture
from fastsr.graph.ir import Graph
from fastsr.graph.shipped import load_config

# Keys under which training code commonly nests the state_dict it saves.
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "params_ema", "params", "model")

Shapes = dict[str, tuple[int, ...]]
PICKLED_SUFFIXES = (".pth", ".pt", ".ckpt")  # torch.save files, read with weights_only


def load_weights(path: str | Path) -> Graph:
    """The network stored in a `.safetensors` or `.pth`/`.pt` file, as a Graph.

    Raises FileNotFoundError for a missing file and ValueError for a file that cannot be
    read, holds something other than a state_dict, or matches no known architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weight file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        state = _read_safetensors(path)
        json_path = path.with_suffix(".json")
        if json_path.is_file():
            return graph_from_state(state, load_config(json_path), path)
    elif suffix in PICKLED_SUFFIXES:
        state = _read_pickled_state(path)
    else:
        raise ValueError(f"{path}: expected a .safetensors, .pth, .pt or .ckpt file")
    try:
        architecture, args = recognise(state, path)
    except ValueError as unknown:  # not fastsr's own: maybe one of spandrel's
        return _load_foreign(state, path, unknown)
    config = {"name": path.stem, "architecture": architecture, "args": args,
              "scale": args["scale"], "color": args["color"]}
    return graph_from_state(state, config, path)


def _load_foreign(state: dict[str, torch.Tensor], path: Path, unknown: ValueError) -> Graph:
    from fastsr.graph.from_spandrel import UnknownArchitecture, load_spandrel

    try:
        return load_spandrel(state, path)
    except (ImportError, UnknownArchitecture) as why:
        raise ValueError(f"{unknown}. {why}") from None


def graph_from_state(state: dict[str, torch.Tensor], config: dict, source: Path) -> Graph:
    """Build `config`'s architecture, load `state` into it, capture it; meta is the config."""
    from fastsr.models import COLOR_CHANNELS, build_model

    try:
        module = build_model(config["architecture"], **config["args"])
        module.load_state_dict(state)
    except (TypeError, RuntimeError) as error:  # bad args; missing, extra or reshaped tensors
        raise ValueError(
            f"{source}: weights do not fit {config['architecture']}({_signature(config['args'])})"
            f": {error}"
        ) from None
    return capture(module, COLOR_CHANNELS[config["color"]], meta=dict(config))


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a readable safetensors file: {error}") from None


def _read_pickled_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        # weights_only: the unpickler builds tensors and containers only, never calls code.
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # torch's text advises weights_only=False: never
        needed = re.search(r"GLOBAL ([\w.]+)", str(error))
        raise ValueError(
            f"{path}: not a loadable state_dict: it holds pickled Python objects"
            f"{f' ({needed[1]})' if needed else ''}, not just tensors (a whole model saved "
            "with torch.save(model)?); fastsr never unpickles code: save "
            "model.state_dict() instead, or export safetensors or ONNX"
        ) from None
    except Exception as error:  # torch raises many kinds for foreign or hostile files
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()  # no terminal escape codes
        first_line = text.splitlines()[0] if text else ""
        raise ValueError(
            f"{path}: not a loadable state_dict ({type(error).__name__}: {first_line})"
        ) from None
    return _unwrap_state(loaded, path)


def _unwrap_state(loaded, path: Path) -> dict[str, torch.Tensor]:
    while isinstance(loaded, dict):
        nested = next((loaded[k] for k in _CONTAINER_KEYS if isinstance(loaded.get(k), dict)),
                      None)
        if nested is None:
            break
        loaded = nested
    if not isinstance(loaded, dict) or not loaded or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise ValueError(f"{path}: expected a state_dict (names -> tensors), got "
                         f"{type(loaded).__name__}")
    # nn.DataParallel saves every name with a "module." prefix.
    return {k.removeprefix("module."): v for k, v in loaded.items()}


# -- recognising an architecture from tensor names and shapes -------------------------------
def _image_color(channels: int) -> str | None:
    return {1: "y", 3: "rgb"}.get(channels)


def _sub_pixel_scale(out_channels: int, image_channels: int) -> int | None:
    scale = math.isqrt(out_channels // image_channels)
    return scale if scale * scale * image_channels == out_channels else None


def _recognise_srnet(shapes: Shapes) -> dict | None:
    head, tail = shapes.get("head.0.weight"), shapes.get("tail.0.weight")
    if head is None or tail is None or len(head) != 4 or len(tail) != 4:
        return None
    color, scale = _image_color(head[1]), _sub_pixel_scale(tail[0], head[1])
    if color is None or scale is None:
        return None
    blocks = len({key.split(".")[1] for key in shapes if key.startswith("body.")})
    block = next(
        (kind for kind, marker in (("attention", "body.0.body.3.gate.1.weight"),
                                   ("dense", "body.0.fuse.weight")) if marker in shapes),
        "residual",
    )
    return {"scale": scale, "channels": head[0], "blocks": blocks, "color": color,
            "block": block}


def _recognise_fastnet(shapes: Shapes) -> dict | None:
    convs = sorted(int(key.split(".")[1]) for key in shapes
                   if key.startswith("body.") and key.endswith(".weight"))
    if "head.0.weight" in shapes or not convs or len(shapes.get("body.0.weight", ())) != 4:
        return None
    first, last = shapes["body.0.weight"], shapes[f"body.{convs[-1]}.weight"]
    color, scale = _image_color(first[1]), _sub_pixel_scale(last[0], first[1])
    if color is None or scale is None or first[2:] != (5, 5):
        return None
    widths = [shapes[f"body.{i}.weight"][0] for i in convs[:-1]]
    return {"scale": scale, "widths": widths, "color": color}


# Architecture (a `fastsr.models.build_model` name) -> recogniser of its state_dict.
RECOGNISERS: dict[str, Callable[[Shapes], dict | None]] = {
    "srnet": _recognise_srnet,
    "fastnet": _recognise_fastnet,
}


def recognise(state: dict[str, torch.Tensor], source: Path) -> tuple[str, dict]:
    """(architecture, build_model args) whose state_dict has exactly these names and shapes."""
    from fastsr.models import build_model

    shapes = {key: tuple(value.shape) for key, value in state.items()}
    near_misses = []
    for architecture, recogniser in RECOGNISERS.items():
        args = recogniser(shapes)
        if args is None:
            continue
        expected = {k: tuple(v.shape) for k, v in build_model(architecture, **args)
                    .state_dict().items()}
        if expected == shapes:
            return architecture, args
        near_misses.append(f"{architecture}({_signature(args)}) except for "
                           f"{_difference(expected, shapes)}")
    found = ", ".join(f"{k} {list(v)}" for k, v in list(shapes.items())[:6])
    raise ValueError(
        f"{source}: the network is not one fastsr knows ({', '.join(RECOGNISERS)}). "
        + (f"It looks like {'; '.join(near_misses)}. " if near_misses else "")
        + f"It holds {len(shapes)} tensors, starting with: {found}"
    )


def _signature(args: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def _difference(expected: Shapes, found: Shapes) -> str:
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    reshaped = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])
    parts = [f"{label} {names[:4]}{' ...' if len(names) > 4 else ''}"
             for label, names in (("missing", missing), ("unexpected", unexpected),
                                  ("wrong shape", reshaped)) if names]
    return "; ".join(parts)

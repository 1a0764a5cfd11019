"""Shipped weights: a JSON config, a safetensors state dict and the serialised graph per model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from fastsr.color import rgb_to_ycbcr, ycbcr_to_rgb
from fastsr.evaluate import UpscaleFn
from fastsr.graph.shipped import SHIPPED_DIR as WEIGHTS_DIR
from fastsr.graph.shipped import export_graph
from fastsr.models import build_model


def config_path(name_or_json_path: str | Path) -> Path:
    path = Path(name_or_json_path)
    if path.suffix == ".json":
        return path
    return WEIGHTS_DIR / f"{name_or_json_path}.json"


def load_module(name_or_json_path: str | Path) -> tuple[nn.Module, dict]:
    """The trained module (in eval mode) and its config, e.g. `load_module("quality_x2")`."""
    json_path = config_path(name_or_json_path)
    if not json_path.exists():
        raise FileNotFoundError(f"no model config at {json_path}")
    config = json.loads(json_path.read_text())
    module = build_model(config["architecture"], **config["args"])
    module.load_state_dict(load_file(json_path.with_suffix(".safetensors")))
    return module.eval(), config


def save_module(module: nn.Module, config: dict, directory: str | Path) -> Path:
    """Write `<name>.safetensors` (fp32 state dict), `<name>.json` and the model's graph
    (`<name>.graph.safetensors`, what `fastsr.load` reads); returns the JSON path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().float().contiguous() if v.is_floating_point() else v.contiguous()
        for k, v in module.state_dict().items()
    }
    json_path = directory / f"{config['name']}.json"
    save_file(state, json_path.with_suffix(".safetensors"))
    json_path.write_text(json.dumps(config, indent=2) + "\n")
    export_graph(json_path)
    return json_path


def torch_upscaler(module: nn.Module, color: str) -> UpscaleFn:
    """An `evaluate` upscaler running `module` in fp32: uint8 HxWx3 RGB in, uint8 RGB out.

    Y models see the BT.601 luma; chroma is upscaled bicubically beside them.
    """

    @torch.no_grad()
    def upscale(lr: np.ndarray) -> np.ndarray:
        rgb = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255
        if color == "rgb":
            sr = module(rgb)
        else:
            ycbcr = rgb_to_ycbcr(rgb, 1)
            sr_y = module(ycbcr[:, :1])
            chroma = F.interpolate(
                ycbcr[:, 1:],
                scale_factor=sr_y.shape[-1] // rgb.shape[-1],
                mode="bicubic",
                align_corners=False,
            )
            sr = ycbcr_to_rgb(torch.cat([sr_y, chroma], dim=1), 1)
        out = (sr[0].permute(1, 2, 0) * 255).round().clamp(0, 255)
        return out.to(torch.uint8).numpy()

    return upscale

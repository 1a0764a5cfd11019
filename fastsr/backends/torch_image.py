"""The image stage of the torch backends (reference, triton), in torch ops: the caller's
pixels into the model and back, as `Compiled.run_image` promises (fastsr/backends/__init__).

Being plain torch, it is also the reference that the C++ image stage of the cpu backend
(csrc/image_io.cpp) is tested against.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from fastsr.color import rgb_to_ycbcr, ycbcr_to_rgb
from fastsr.graph.ir import Graph, image_color

# float32 copies of a window's upscaled pixels alive at once in this stage (model output,
# colour conversion, concatenation, dtype conversion): part of a plan's bytes.
PIPELINE_COPIES = 4
_FULL = {torch.uint8: 255, torch.uint16: 65535}


def _as_tensor(array, device) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array.to(device)
    if min(array.strides) < 0:  # torch takes no negative strides: copy once
        array = np.array(array)  # (ascontiguousarray keeps size-1 negative strides)
    with warnings.catch_warnings():  # read-only arrays are fine: they are only read
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(array).to(device)


def _bicubic(x: torch.Tensor, scale: int, valid: tuple[int, int] | None = None) -> torch.Tensor:
    """valid: the rows and columns that are the frame's own. The rest repeat its edge,
    where the bicubic clamps, so they give what the frame alone gives."""
    nchw = x.permute(0, 3, 1, 2).contiguous()  # torch's bicubic is ~2.5x slower on NHWC views
    if valid is not None:
        (rows, cols), (h, w) = valid, nchw.shape[2:]
        nchw = F.pad(nchw[..., :rows, :cols], (0, w - cols, 0, h - rows), mode="replicate")
    up = F.interpolate(nchw, scale_factor=scale, mode="bicubic", align_corners=False)
    return up.clamp_(0, 1).permute(0, 2, 3, 1)


def upscale_colour(run, color: str, x: torch.Tensor, scale: int,
                   valid: tuple[int, int] | None = None) -> torch.Tensor:
    """RGB (3 channels) or grey (1 channel) float in [0, 1] through the model, same
    channels out.

    Grey goes through as R = G = B and comes back as the mean of the three, so an RGB
    model cannot give it a colour cast; Y models get R = G = B's luma, chroma stays flat.
    """
    if x.shape[3] == 1:
        return upscale_colour(run, color, x.expand(-1, -1, -1, 3), scale).mean(3, True)
    if color == "rgb":
        return run(x.contiguous())
    ycbcr = rgb_to_ycbcr(x)
    y = run(ycbcr[..., :1].contiguous())
    return ycbcr_to_rgb(torch.cat([y, _bicubic(ycbcr[..., 1:], scale, valid)], dim=3))


class TorchCompiled:
    """A torch backend's compiled plan: `run` on float NHWC tensors, `run_image` on pixels."""

    def __init__(self, run, graph: Graph, device: torch.device, nbytes: int):
        self._run, self.device, self.nbytes = run, device, nbytes
        self.color = image_color(graph)
        shapes = graph.shapes()
        self.scale = int(shapes[graph.output].scale)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)

    @torch.no_grad()
    def run_image(self, src, dst, top: int = 0, left: int = 0,
                  valid: tuple[int, int] | None = None) -> None:
        if self.color is None:
            raise ValueError("this graph is neither an RGB nor a Y image model")
        x = _as_tensor(src, self.device)
        if valid is not None and not (0 < valid[0] <= x.shape[1] and 0 < valid[1] <= x.shape[2]):
            raise ValueError(f"valid {valid} must be within src's {x.shape[1]} x {x.shape[2]}")
        full = _FULL.get(x.dtype)
        x = x.to(torch.float32) if full is None else x.to(torch.float32) / full
        y = upscale_colour(self._run, self.color, x, self.scale, valid).clamp_(0, 1)
        y = y[:, top : top + dst.shape[1], left : left + dst.shape[2]]
        if full is not None:
            y = (y * full).round_()
        if isinstance(dst, torch.Tensor):
            dst.copy_(y.to(dst.dtype))
        else:
            dst[...] = y.cpu().numpy().astype(dst.dtype)


def image_stage_bytes(graph: Graph, plan) -> int:
    """Bytes of the float copies `run_image` holds besides the network's own buffers."""
    _, out_h, out_w = plan.shapes[graph.output]
    return PIPELINE_COPIES * 4 * plan.batch * out_h * out_w * 3

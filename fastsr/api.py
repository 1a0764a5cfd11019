"""The Python front door: `upscale` for one call, `Upscaler` for a stream of frames.

Images come in as what the user has (numpy, Pillow, torch) and go back as the same
kind, layout and dtype (`fastsr.imageio.as_pixels` validates and views them, once, here;
the engine below trusts its input). A frame is processed window by window (one window
unless it needs tiles): the window becomes float32 in [0, 1] with C = 1 (grey), 2 (grey
+ alpha), 3 (RGB) or 4 (RGBA) channels, goes through the colour pipeline and the model,
and is written back in the caller's dtype.
"""

from __future__ import annotations

import functools
import numbers
import threading
import warnings
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F

from fastsr import tiling
from fastsr.backends import BACKEND_MODULES, get_backend
from fastsr.color import rgb_to_ycbcr, ycbcr_to_rgb
from fastsr.engine import Engine
from fastsr.graph.ir import Graph
from fastsr.imageio import PixelView, as_pixels, constant_alpha, from_unit, to_unit

DEFAULT_MODEL = "quality"
DEFAULT_MAX_MEMORY = 1 << 30  # bytes of activations per model run before tiling starts
BACKENDS = ("auto", *BACKEND_MODULES)

# -- model and options --------------------------------------------------------------------


def _check_scale(scale) -> None:
    if scale is not None and (
        isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1
    ):
        raise ValueError(f"scale must be a positive whole number (2, 3, 4...), got {scale!r}")


def _load_graph(model, scale: int | None) -> Graph:
    if isinstance(model, Graph):
        return model
    from fastsr.graph import load  # the frontends import torch.fx / onnx: only when needed

    return load(DEFAULT_MODEL if model is None else model, scale=scale)


def graph_scale(graph: Graph) -> int:
    """The upscaling factor of a graph: its output size over its input size."""
    factor = graph.shapes()[graph.output].scale
    if factor == tiling.GLOBAL or factor.denominator != 1 or factor < 1:
        raise ValueError(f"the model does not upscale by a whole factor (output scale {factor})")
    return int(factor)


def _graph_color(graph: Graph) -> str:
    color = graph.meta.get("color") or {3: "rgb", 1: "y"}.get(graph.input_channels)
    out_channels = graph.shapes()[graph.output].channels
    expected = {"rgb": 3, "y": 1}.get(color)
    if expected is None or graph.input_channels != expected or out_channels != expected:
        raise ValueError(
            "expected an RGB model (3 channels in and out) or a Y model (1 in and out), got "
            f"{graph.input_channels} channels in, {out_channels} out (color {color!r})"
        )
    return color


@functools.cache
def _availability(backend: str) -> str | None:
    try:
        return get_backend(backend).availability()
    except ImportError as error:
        return f"not importable: {error}"


@functools.cache
def _warn_reference(reason: str) -> None:
    warnings.warn(
        f"fastsr: falling back to the slow reference backend; the cpu backend is not "
        f"available: {reason}",
        RuntimeWarning,
        stacklevel=4,
    )


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend "auto" means for input on `device`; explicit names pass through."""
    if backend != "auto":
        return backend
    if device.type == "cuda" and _availability("triton") is None:
        return "triton"
    reason = _availability("cpu")
    if reason is None:
        return "cpu"
    _warn_reference(reason)
    return "reference"


def _set_threads(backend: str, threads: int) -> None:
    """Give the backend `threads` threads (a process-wide setting for both backends)."""
    if backend == "cpu":
        from fastsr import _C

        _C.set_max_threads(threads)
    elif backend == "reference":
        torch.set_num_threads(threads)


# -- the upscaler -------------------------------------------------------------------------

# float32 copies of a tile's upscaled pixels alive at once in the colour pipeline (model
# output, colour conversion, concatenation, dtype conversion): part of a tile's memory.
_PIPELINE_COPIES = 4
# A run's measured memory over its plan's (peak_bytes + input + output): backends keep
# buffers beyond the plan's shared slots (the cpu backend pads them for its convolution
# borders and copies in and out; torch allocates each op's output). Measured with the fast
# model at 500^2 and 1000^2 windows; a backend that reports its own bytes makes this moot.
_BACKEND_MEMORY_FACTOR = {"cpu": 2.2, "reference": 1.6, "triton": 1.0}
# Share of max_memory a tile may plan for: the rest covers what tiles do not control (the
# allocator's fragmentation across tiles, loading and compiling the model); measured at
# 64 MiB to 1 GiB budgets on 1080p and 4K frames.
_TILE_SHARE = 0.75
_BICUBIC_REACH = 3  # LR pixels a bicubic upscale reads around a pixel (chroma of Y models)


class Upscaler:
    """A model compiled for a backend, holding its plan and buffers for a stream of frames.

    `up(frame)` takes and returns what `upscale` does. The plan is made for the first
    frame's size and reused until the size changes. Calls from several threads are safe
    and run one frame at a time: input checks run in parallel, the upscaling itself is
    serialised (a plan owns its buffers, and the cpu backend already spreads one frame
    over all its threads).

    Alpha is upscaled by the model, run on the alpha plane as a grey image (sharper
    edges than bicubic); an alpha that is the same everywhere (opaque) is carried over.

    The arguments are those of `upscale`; `progress=True` shows a bar over the tiles of
    frames big enough to need them.
    """

    def __init__(
        self,
        model=None,
        scale: int | None = None,
        backend: str = "auto",
        threads: int | None = None,
        tile: int | None = None,
        max_memory: int = DEFAULT_MAX_MEMORY,
        progress: bool = False,
    ):
        _check_scale(scale)
        if not isinstance(backend, str) or backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}, expected one of {list(BACKENDS)}")
        for name, value in (("threads", threads), ("tile", tile)):
            if value is not None and (not isinstance(value, numbers.Integral) or value < 1):
                raise ValueError(f"{name} must be a positive whole number, got {value!r}")
        if not isinstance(max_memory, numbers.Integral) or max_memory < 1:
            raise ValueError(f"max_memory must be a positive number of bytes, got {max_memory!r}")
        self.graph = _load_graph(model, scale)
        self.scale = graph_scale(self.graph)
        if scale is not None and scale != self.scale:
            raise ValueError(f"this model upscales by {self.scale}, not by the requested {scale}")
        self.color = _graph_color(self.graph)
        self.backend, self.threads, self.tile = backend, threads, tile
        self.max_memory, self.progress = max_memory, progress
        self._halo = tiling.receptive_radius(self.graph)
        if tile is not None and self._halo is None:
            raise ValueError(
                "this model pools over the whole image (global average pooling), so tiles "
                "would change its output; leave tile=None"
            )
        if self._halo is not None and self.color == "y":
            self._halo = max(self._halo, _BICUBIC_REACH)
        self._align = tiling.alignment(self.graph)
        self._engines: dict[str, Engine] = {}
        self._tile_plans: dict[tuple, tiling.TilePlan | None] = {}
        self._tile_budget = int(max_memory * _TILE_SHARE)  # halved after out-of-memory
        self._lock = threading.Lock()
        if backend != "auto":
            self._engine(backend)  # an unavailable backend fails here, not on the first frame

    def __call__(self, image):
        source = as_pixels(image)
        with torch.no_grad():
            return source.restore(self._upscale(source))

    def stream(self, frames: Iterable) -> Iterator:
        """Upscale frames one by one as they come (a generator)."""
        for frame in frames:
            yield self(frame)

    # -- internals ------------------------------------------------------------------------
    def _engine(self, backend: str) -> Engine:
        engine = self._engines.get(backend)
        if engine is None:
            engine = Engine(self.graph, backend)
            if self.threads is not None:
                _set_threads(backend, self.threads)
            self._engines[backend] = engine
        return engine

    def _upscale(self, source: PixelView) -> torch.Tensor:
        n, h, w, channels = source.pixels.shape
        backend = resolve_backend(self.backend, source.pixels.device)
        # triton runs CUDA tensors (or CPU ones in its interpreter, TRITON_INTERPRET=1)
        on_gpu = backend == "triton" and torch.cuda.is_available()
        device = torch.device("cuda" if on_gpu else "cpu")
        alpha = constant_alpha(source)
        out = source.new_output(h * self.scale, w * self.scale)
        with self._lock:  # one frame at a time: tiles of two frames never interleave
            engine = self._engine(backend)

            def upscale_window(window: torch.Tensor) -> torch.Tensor:
                x = to_unit(window.to(device), source.full)
                y = self._pipeline(engine.run, x, alpha).clamp_(0, 1)
                return from_unit(y, source.full, out.dtype).to(out.device)

            while True:
                plan = self._tile_plan(engine, backend, n, h, w, channels)
                whole = tiling.TilePlan(h, w, 0, self.scale)
                try:
                    (plan or whole).run(upscale_window, source.pixels, out, self._progress_bar())
                    return out
                except (MemoryError, torch.OutOfMemoryError):
                    if not self._shrink_tiles(engine, backend, source.pixels.shape, on_gpu):
                        raise

    def _shrink_tiles(self, engine: Engine, backend: str, shape, on_gpu: bool) -> bool:
        """After running out of memory: halve the tile budget until the tiles get smaller.

        False when they cannot (forced tiles, a global receptive field, smallest tiles).
        """
        if self.tile is not None or self._halo is None:
            return False
        _, h, w, _ = shape
        failed = self._tile_plan(engine, backend, *shape)
        area = h * w if failed is None else failed.window_h * failed.window_w
        while self._tile_budget > 1:
            self._tile_budget, self._tile_plans = self._tile_budget // 2, {}
            plan = self._tile_plan(engine, backend, *shape)
            if plan is not None and plan.window_h * plan.window_w < area:
                warnings.warn(
                    f"fastsr: out of memory; retrying with {plan.window_w}x{plan.window_h} tiles",
                    RuntimeWarning,
                    stacklevel=4,
                )
                if on_gpu:
                    torch.cuda.empty_cache()
                return True
        return False

    def _pipeline(self, run, x: torch.Tensor, alpha: float | None) -> torch.Tensor:
        """N x h x w x C float in [0, 1] -> N x sh x sw x C: colour and alpha, each its way."""
        colour_channels = 3 if x.shape[3] >= 3 else 1
        out = _upscale_colour(run, self.color, x[..., :colour_channels], self.scale)
        if x.shape[3] == colour_channels:
            return out
        if alpha is None:
            alpha_out = _upscale_colour(run, self.color, x[..., colour_channels:], self.scale)
        else:
            alpha_out = out.new_full((*out.shape[:3], 1), alpha)
        return torch.cat([out, alpha_out], dim=3)

    def _tile_plan(self, engine: Engine, backend: str, n: int, h: int, w: int, channels: int):
        key = (backend, n, h, w, channels)
        if key not in self._tile_plans:
            cin = self.graph.input_channels

            def window_bytes(height: int, width: int) -> int:
                lr, hr = n * height * width, n * height * width * self.scale**2
                model = engine.plan(n, height, width).peak_bytes + 4 * cin * (lr + hr)
                model *= _BACKEND_MEMORY_FACTOR[backend]
                return int(model) + _PIPELINE_COPIES * 4 * hr * max(channels, 3)

            plan = tiling.plan_tiles(
                window_bytes, h, w, self._halo, self._align, self.scale, self.tile,
                self._tile_budget,
            )  # fmt: skip
            if self._halo is None and window_bytes(h, w) > self.max_memory:
                warnings.warn(
                    f"fastsr: a {w}x{h} frame needs more than max_memory={self.max_memory} "
                    "bytes, but this model pools over the whole image and cannot be tiled "
                    "exactly; running it whole",
                    RuntimeWarning,
                    stacklevel=5,
                )
            self._tile_plans = {key: plan}  # keep one: a stream keeps its frame size
        return self._tile_plans[key]

    def _progress_bar(self):
        if not self.progress:
            return None
        from tqdm import tqdm

        bar = None

        def on_tile(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, desc="tiles", unit="tile", delay=1, leave=False)
            bar.update(1)
            if done == total:
                bar.close()

        return on_tile


def _bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    nchw = x.permute(0, 3, 1, 2).contiguous()  # torch's bicubic is ~2.5x slower on NHWC views
    up = F.interpolate(nchw, scale_factor=scale, mode="bicubic", align_corners=False)
    return up.clamp_(0, 1).permute(0, 2, 3, 1)


def _upscale_colour(run, color: str, x: torch.Tensor, scale: int) -> torch.Tensor:
    """RGB (3 channels) or grey (1 channel) through the model, same channels out.

    Grey goes through as R = G = B and comes back as the mean of the three, so an RGB
    model cannot give it a colour cast; Y models get R = G = B's luma, chroma stays flat.
    """
    if x.shape[3] == 1:
        return _upscale_colour(run, color, x.expand(-1, -1, -1, 3), scale).mean(3, True)
    if color == "rgb":
        return run(x.contiguous())
    ycbcr = rgb_to_ycbcr(x)
    y = run(ycbcr[..., :1].contiguous())
    return ycbcr_to_rgb(torch.cat([y, _bicubic(ycbcr[..., 1:], scale)], dim=3))


@functools.lru_cache(maxsize=4)
def _named_upscaler(model, scale, backend, threads, tile, max_memory) -> Upscaler:
    return Upscaler(model, scale, backend, threads, tile, max_memory)


def upscale(
    image,
    scale: int | None = None,
    model=None,
    backend: str = "auto",
    tile: int | None = None,
    threads: int | None = None,
    max_memory: int = DEFAULT_MAX_MEMORY,
):
    """Upscale `image` and return the same kind of thing, layout and dtype.

    image: numpy H x W, H x W x C or N x H x W x C (C = 1, 2, 3 or 4: grey, grey+alpha,
        RGB, RGBA), uint8 / uint16 / float (floats in [0, 1]); a PIL image; a torch
        tensor C x H x W or N x C x H x W (kept on its device).
    scale: the upscaling factor; None means the model's own (2 for the default model).
    model: a shipped model name ("quality" by default, "fast"), a weight file path
        (.safetensors, .pth, .pt, .onnx) or a torch.nn.Module.
    backend: "auto" (triton for CUDA tensors, else cpu, else reference), "cpu",
        "triton" or "reference".
    tile: force tiles of this many LR pixels; None tiles only when a run would need
        more than `max_memory` bytes. Tiled output equals untiled output.
    threads: CPU threads for the backend (a process-wide setting).
    max_memory: bytes of working memory a call may take besides its input and output
        (default 1 GiB); frames that need more are tiled. Loading the model is extra.

    Models given as a name or path string stay compiled between calls (the last few).
    For a stream of frames, hold an `Upscaler` instead.
    """
    options = (scale, backend, threads, tile, max_memory)
    if isinstance(model, (str, type(None))) and all(
        isinstance(value, (int, str, type(None))) for value in options
    ):
        up = _named_upscaler(model, *options)
    else:  # a module, a path object or an odd option: built (and checked) afresh
        up = Upscaler(model, *options)
    return up(image)

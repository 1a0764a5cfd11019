"""The Python front door: `upscale` for one call, `Upscaler` for a stream of frames.

Images come in as what the user has (numpy, Pillow, torch) and go back as the same
kind, layout and dtype (`fastsr.pixels.as_pixels` validates and views them, once, here;
everything below trusts its input). A frame is processed window by window (one window
unless it needs tiles): the backend's compiled plan takes the caller's pixels of each
window and writes the caller's dtype into the output (`Compiled.run_image`), so on the
cpu backend a frame is one C++ call and neither numpy nor torch computes per frame.
"""

from __future__ import annotations

import functools
import math
import numbers
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator

from fastsr import padding, tiling
from fastsr.backends import BACKEND_MODULES, availability, check_precision_name
from fastsr.engine import Engine
from fastsr.graph.ir import RESIZE_MODES, Graph, image_color
from fastsr.pixels import PixelView, as_pixels, constant_alpha

DEFAULT_MODEL = "quality"
DEFAULT_MAX_MEMORY = 1 << 30  # bytes of working memory per model run before tiling starts
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
    color = image_color(graph)
    if color is None:
        out_channels = graph.shapes()[graph.output].channels
        raise ValueError(
            "expected an RGB model (3 channels in and out) or a Y model (1 in and out), got "
            f"{graph.input_channels} channels in, {out_channels} out "
            f"(color {graph.meta.get('color')!r})"
        )
    return color


def _runs_in_torch(graph: Graph, backend: str) -> bool:
    """True for a graph holding a module fastsr could not capture: "auto" runs it on the
    reference backend (PyTorch), with one warning naming what blocked capture."""
    if not any(node.op == "torch_module" for node in graph.nodes):
        return False
    from fastsr.graph.from_spandrel import warn_fallback

    if backend not in ("auto", "reference"):
        raise ValueError(
            f"backend {backend!r} cannot run this model: it could not be captured "
            f"({graph.meta.get('fallback')}); use backend='auto' to run it in PyTorch"
        )
    warn_fallback(graph)
    return True


@functools.cache
def _warn_reference(reason: str) -> None:
    warnings.warn(
        f"fastsr: falling back to the slow reference backend; the cpu backend is not "
        f"available: {reason}",
        RuntimeWarning,
        stacklevel=4,
    )


def resolve_backend(backend: str, device: str) -> str:
    """The backend "auto" means for pixels on `device` ("cpu", "cuda"); explicit names
    pass through."""
    if backend != "auto":
        return backend
    if device == "cuda" and availability("triton") is None:
        return "triton"
    reason = availability("cpu")
    if reason is None:
        return "cpu"
    _warn_reference(reason)
    return "reference"


def _out_of_memory_errors() -> tuple[type[BaseException], ...]:
    torch = sys.modules.get("torch")  # only a torch backend can raise torch's error
    return (MemoryError,) if torch is None else (MemoryError, torch.OutOfMemoryError)


# -- the upscaler -------------------------------------------------------------------------

# Share of max_memory a tile may plan for: the rest covers what tiles do not control (the
# allocator's fragmentation across tiles, loading and compiling the model); measured at
# 64 MiB to 1 GiB budgets on 1080p and 4K frames.
_TILE_SHARE = 0.75


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
        precision: str = "fp32",
    ):
        _check_scale(scale)
        if not isinstance(backend, str) or backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}, expected one of {list(BACKENDS)}")
        check_precision_name(precision)  # before the engine, which "auto" makes later
        for name, value in (("threads", threads), ("tile", tile)):
            if value is not None and (not isinstance(value, numbers.Integral) or value < 1):
                raise ValueError(f"{name} must be a positive whole number, got {value!r}")
        if not isinstance(max_memory, numbers.Integral) or max_memory < 1:
            raise ValueError(f"max_memory must be a positive number of bytes, got {max_memory!r}")
        self.graph = _load_graph(model, scale)
        self._torch_only = _runs_in_torch(self.graph, backend)
        self.scale = graph_scale(self.graph)
        if scale is not None and scale != self.scale:
            raise ValueError(f"this model upscales by {self.scale}, not by the requested {scale}")
        self.color = _graph_color(self.graph)
        self.backend, self.threads, self.tile = backend, threads, tile
        self.precision, self.max_memory, self.progress = precision, max_memory, progress
        self._halo = tiling.receptive_radius(self.graph)
        if tile is not None and self._halo is None:
            raise ValueError(
                "this model pools over the whole image (global average pooling), so tiles "
                "would change its output; leave tile=None"
            )
        if self._halo is not None and self.color == "y":
            self._halo = max(self._halo, RESIZE_MODES["bicubic"].reach)  # the chroma
        self._padding = None if self._torch_only else padding.frame_padding(self.graph)
        self._align = tiling.alignment(self.graph)
        if self._padding is not None:
            self._align = math.lcm(self._align, self._padding.alignment)
        self._engines: dict[str, Engine] = {}
        self._tile_plans: dict[tuple, tiling.TilePlan | None] = {}
        self._tile_budget = int(max_memory * _TILE_SHARE)  # halved after out-of-memory
        self._lock = threading.Lock()
        if backend != "auto":
            self._engine(backend)  # an unavailable backend fails here, not on the first frame

    def __call__(self, image):
        source = as_pixels(image)
        return source.restore(self._upscale(source))

    def stream(self, frames: Iterable) -> Iterator:
        """Upscale frames one by one as they come (a generator)."""
        for frame in frames:
            yield self(frame)

    def takes_planes(self, height: int, width: int) -> bool:
        """Whether `upscale_planes` takes video frames of this size: the backend's plan
        runs YUV planes (the cpu backend's does) and a frame is one window, unpadded."""
        if self._torch_only or (
            self._padding is not None
            and self._padding.padded_size(height, width) != (height, width)
        ):
            return False
        with self._lock:
            engine = self._engine(resolve_backend(self.backend, "cpu"))
            if self._tile_plan(engine, 1, height, width) is not None:
                return False
            with engine.lock:
                return hasattr(engine.compiled(1, height, width), "run_yuv")

    def upscale_planes(self, src, dst, **coding) -> None:
        """One video frame from its (Y, Cb, Cr) planes into dst's, of a size `takes_planes`
        accepted; `coding` as `fastsr._C.Program.run_yuv` (subsampling, bits, range,
        matrix)."""
        height, width = src[0].shape
        with self._lock:
            engine = self._engine(resolve_backend(self.backend, "cpu"))
            with engine.lock:
                engine.compiled(1, height, width).run_yuv(src, dst, **coding)

    # -- internals ------------------------------------------------------------------------
    def _engine(self, backend: str) -> Engine:
        engine = self._engines.get(backend)
        if engine is None:
            engine = Engine(self.graph, backend, self.precision, self.threads)
            self._engines[backend] = engine
        return engine

    def _upscale(self, source: PixelView):
        pixels = source.pixels
        n, h, w, channels = pixels.shape
        backend = "reference" if self._torch_only else resolve_backend(self.backend, source.device)
        colour = 3 if channels >= 3 else 1
        alpha = constant_alpha(source)
        out = source.new_output(h * self.scale, w * self.scale)
        if alpha is not None:
            out[..., colour] = alpha
        frame = (h, w)
        if self._padding is not None:  # the output's crop: windows write only inside `out`
            pixels = self._padding.pad(pixels)
            h, w = pixels.shape[1:3]
        with self._lock:  # one frame at a time: tiles of two frames never interleave
            engine = self._engine(backend)
            while True:
                plan = self._tile_plan(engine, n, h, w) or tiling.TilePlan(h, w, 0, self.scale)
                try:
                    with engine.lock:
                        self._run_windows(engine, plan, pixels, frame, out, colour,
                                          alpha is None)
                    return out
                except _out_of_memory_errors():
                    if not self._shrink_tiles(engine, pixels.shape):
                        raise

    def _run_windows(self, engine: Engine, plan, pixels, frame, out, colour: int, alpha: bool):
        """frame: the height and width of the frame before padding."""
        windows = plan.windows(pixels.shape[1], pixels.shape[2])
        on_tile = self._progress_bar(len(windows))
        for window in windows:
            compiled = engine.compiled(pixels.shape[0], window.h, window.w)
            src = pixels[:, window.y0 : window.y0 + window.h, window.x0 : window.x0 + window.w]
            dst = out[:, window.out_y0 : window.out_y1, window.out_x0 : window.out_x1]
            if dst.shape[1] == 0 or dst.shape[2] == 0:  # a window of padding alone
                continue
            valid = (min(window.h, frame[0] - window.y0), min(window.w, frame[1] - window.x0))
            compiled.run_image(src[..., :colour], dst[..., :colour], window.top, window.left,
                               None if valid == (window.h, window.w) else valid)
            if alpha and pixels.shape[3] > colour:
                compiled.run_image(src[..., colour:], dst[..., colour:], window.top, window.left)
            if on_tile is not None:
                on_tile()

    def _shrink_tiles(self, engine: Engine, shape) -> bool:
        """After running out of memory: halve the tile budget until the tiles get smaller.

        False when they cannot (forced tiles, a global receptive field, smallest tiles).
        """
        if self.tile is not None or self._halo is None:
            return False
        n, h, w, _ = shape
        failed = self._tile_plan(engine, n, h, w)
        area = h * w if failed is None else failed.window_h * failed.window_w
        while self._tile_budget > 1:
            self._tile_budget, self._tile_plans = self._tile_budget // 2, {}
            plan = self._tile_plan(engine, n, h, w)
            if plan is not None and plan.window_h * plan.window_w < area:
                warnings.warn(
                    f"fastsr: out of memory; retrying with {plan.window_w}x{plan.window_h} tiles",
                    RuntimeWarning,
                    stacklevel=4,
                )
                torch = sys.modules.get("torch")
                if torch is not None and torch.cuda.is_available():
                    torch.cuda.empty_cache()
                return True
        return False

    def _tile_plan(self, engine: Engine, n: int, h: int, w: int):
        key = (engine.backend.name, n, h, w)
        if key not in self._tile_plans:

            def window_bytes(height: int, width: int) -> int:
                return engine.plan_bytes(n, height, width)

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

    def _progress_bar(self, total: int):
        if not self.progress or total == 1:
            return None
        from tqdm import tqdm

        bar = tqdm(total=total, desc="tiles", unit="tile", delay=1, leave=False)

        def on_tile() -> None:
            bar.update(1)
            if bar.n == total:
                bar.close()

        return on_tile


@functools.lru_cache(maxsize=4)
def _named_upscaler(model, scale, backend, threads, tile, max_memory, precision) -> Upscaler:
    return Upscaler(model, scale, backend, threads, tile, max_memory, precision=precision)


def upscale(
    image,
    scale: int | None = None,
    model=None,
    backend: str = "auto",
    tile: int | None = None,
    threads: int | None = None,
    max_memory: int = DEFAULT_MAX_MEMORY,
    precision: str = "fp32",
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
    threads: CPU threads for the call (every thread pool it uses); None: all cores.
    max_memory: bytes of working memory a call may take besides its input and output
        (default 1 GiB); frames that need more are tiled. Loading the model is extra.
    precision: "fp32" (default), or a lower precision the backend runs on this machine
        ("bf16", "fp16", "int8"); another one is a ValueError naming what it runs.

    Models given as a name or path string stay compiled between calls (the last few).
    For a stream of frames, hold an `Upscaler` instead.
    """
    options = (scale, backend, threads, tile, max_memory, precision)
    if isinstance(model, (str, type(None))) and all(
        isinstance(value, (int, str, type(None))) for value in options
    ):
        up = _named_upscaler(model, *options)
    else:  # a module, a path object or an odd option: built (and checked) afresh
        up = Upscaler(model, scale, backend, threads, tile, max_memory, precision=precision)
    return up(image)

"""Backends run a planned graph. Each is one module mapping IR ops to its kernels.

A backend is an object that answers for itself; nothing above it switches on its name:
  name: str
  device: str                          "cpu" or "cuda": where its arrays live
  array: str                           "numpy" or "torch": the arrays its runs take
  availability() -> str | None         None when usable here, else the reason it is not
  precisions() -> tuple[str, ...]      the precisions it can run on this machine
  unsupported(graph) -> list[str]      one message per node it cannot run (empty: all fine)
  plan_bytes(graph, plan, precision) -> int
      the memory a compiled plan holds: activation buffers with their borders, scratch,
      the copies of its image stage; tiling sizes windows from it
  compile(graph, plan, precision, threads) -> Compiled
      threads (None: the backend's default) governs every thread pool the runs use.

A Compiled plan has
  run(x) -> y        float32 N x H x W x C in, a new N x H' x W' x C' out (backend arrays)
  run_image(src, dst, top, left)
      the whole frame: src, the caller's pixels of the plan's size (N x H x W x C, C = 1
      or 3, uint8 / uint16 / float, any strides), through the colour model of the graph
      (meta["color"]: "rgb", or "y" for luma with bicubic chroma) and the network, into
      dst (same dtype), which receives the output from row `top`, column `left` on,
      clamped to [0, 1] and rounded.
"""

from __future__ import annotations

import importlib

BACKEND_MODULES = {
    "reference": "fastsr.backends.reference",
    "cpu": "fastsr.backends.cpu",
    "triton": "fastsr.backends.triton",
}
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def get_backend(name: str):
    """The backend object called `name`; ValueError for an unknown name."""
    if name not in BACKEND_MODULES:
        raise ValueError(f"unknown backend '{name}', expected one of {sorted(BACKEND_MODULES)}")
    return importlib.import_module(BACKEND_MODULES[name]).BACKEND


def availability(name: str) -> str | None:
    """None if backend `name` is usable on this machine, else why not."""
    try:
        return get_backend(name).availability()
    except ImportError as error:
        return f"not importable: {error}"


def backend_status() -> dict[str, str | None]:
    """name -> None if usable on this machine, else why not."""
    return {name: availability(name) for name in BACKEND_MODULES}


def check_precision_name(precision) -> None:
    """A precision or "auto" (fastsr.quantize.auto_precision picks per model and backend)."""
    if precision != "auto" and precision not in PRECISIONS:
        choices = [*PRECISIONS, "auto"]
        raise ValueError(f"unknown precision {precision!r}, expected one of {choices}")


def check_precision(backend, precision: str) -> None:
    """ValueError unless `backend` runs `precision` here, naming what it can run."""
    check_precision_name(precision)
    supported = backend.precisions()
    if precision not in supported:
        raise ValueError(
            f"the {backend.name} backend cannot run {precision} on this machine; it runs "
            f"{', '.join(supported)}"
        )

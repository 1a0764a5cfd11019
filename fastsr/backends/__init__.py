"""Backends run a planned graph. Each is one module mapping IR ops to its kernels.

A backend is an object that answers for itself; nothing above it switches on its name:
  name: str
  device: str                          "cpu" or "cuda": where its arrays live
  array: str                           "numpy" or "torch": the arrays its runs take
  availability() -> str | None         None when usable here, else the reason it is not
  precisions() -> tuple[str, ...]      the precisions it can run on this machine
  faster_precisions(graph) -> tuple[str, ...]
      those of them that beat fp32 on this graph here, fastest first (the ones
      precision="auto" may pick, in the order it tries them)
  unsupported(graph) -> list[str]      one message per node it cannot run (empty: all fine)
  plan_bytes(graph, plan, precision) -> int
      the memory a compiled plan holds: activation buffers with their borders, scratch,
      the copies of its image stage; tiling sizes windows from it
  compile(graph, plan, precision, threads) -> Compiled
      threads (None: the backend's default) governs every thread pool the runs use.

A Compiled plan has
  run(x) -> y        float32 N x H x W x C in, a new N x H' x W' x C' out (backend arrays)
  run_image(src, dst, top, left, valid=None)
      the whole frame: src, the caller's pixels of the plan's size (N x H x W x C, C = 1
      or 3, uint8 / uint16 / float, any strides), through the colour model of the graph
      (meta["color"]: "rgb", or "y" for luma with bicubic chroma) and the network, into
      dst (same dtype), which receives the output from row `top`, column `left` on,
      clamped to [0, 1] and rounded. valid = (rows, columns): src's first rows and
      columns that are the frame's own, the rest padding; a Y model's chroma comes from
      them alone, as from the unpadded frame.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass

BACKEND_MODULES = {
    "reference": "fastsr.backends.reference",
    "cpu": "fastsr.backends.cpu",
    "triton": "fastsr.backends.triton",
}


@dataclass(frozen=True)
class Prerequisites:
    """What a backend's module needs before it is worth importing (torch alone takes
    seconds to import): packages, and a GPU unless the Triton interpreter is asked for.
    enough: the backend runs wherever these are met, so its module need not be asked."""

    packages: tuple[str, ...] = ()
    gpu: bool = False
    enough: bool = False


PREREQUISITES = {
    "reference": Prerequisites(("torch",), enough=True),
    "cpu": Prerequisites(),
    "triton": Prerequisites(("torch", "triton"), gpu=True),
}
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def get_backend(name: str):
    """The backend object called `name`; ValueError for an unknown name."""
    if name not in BACKEND_MODULES:
        raise ValueError(f"unknown backend '{name}', expected one of {sorted(BACKEND_MODULES)}")
    return importlib.import_module(BACKEND_MODULES[name]).BACKEND


def gpu_driver_present() -> bool:
    """False only where a GPU surely cannot be used: Linux with neither the NVIDIA nor the
    ROCm device files. Elsewhere (macOS, Windows) it cannot tell, so True."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.path.exists(path) for path in ("/dev/nvidiactl", "/dev/kfd"))


def missing_prerequisite(name: str) -> str | None:
    """Why backend `name` cannot run here, found without importing it; None: ask it."""
    needs = PREREQUISITES[name]
    missing = [p for p in needs.packages if importlib.util.find_spec(p) is None]
    if missing:
        return f"{', '.join(missing)} not installed"
    if needs.gpu and not gpu_driver_present() and os.environ.get("TRITON_INTERPRET") != "1":
        return (
            "no GPU driver found (set TRITON_INTERPRET=1 to run Triton kernels in the "
            "interpreter on CPU)"
        )
    return None


def availability(name: str) -> str | None:
    """None if backend `name` is usable on this machine, else why not."""
    reason = missing_prerequisite(name) if name in PREREQUISITES else None
    if reason is not None or PREREQUISITES.get(name, Prerequisites()).enough:
        return reason
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

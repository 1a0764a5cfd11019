"""Backends run a planned graph. Each is one module mapping IR ops to its kernels.

A backend is a small object with:
  name: str
  availability() -> str | None        None when usable here, else the reason it is not
  unsupported(graph) -> list[str]     one message per node it cannot run (empty: all fine)
  compile(graph, plan) -> Callable[[torch.Tensor], torch.Tensor]
      the returned function takes a float32 N x H x W x C tensor (contiguous, on the
      backend's device) and returns a new float32 N x H' x W' x C' tensor.
"""

from __future__ import annotations

import importlib

BACKEND_MODULES = {
    "reference": "fastsr.backends.reference",
    "cpu": "fastsr.backends.cpu",
    "triton": "fastsr.backends.triton",
}


def get_backend(name: str):
    """The backend object called `name`; ValueError for an unknown name."""
    if name not in BACKEND_MODULES:
        raise ValueError(f"unknown backend '{name}', expected one of {sorted(BACKEND_MODULES)}")
    return importlib.import_module(BACKEND_MODULES[name]).BACKEND


def backend_status() -> dict[str, str | None]:
    """name -> None if usable on this machine, else why not."""
    status = {}
    for name in BACKEND_MODULES:
        try:
            status[name] = get_backend(name).availability()
        except ImportError as error:
            status[name] = f"not importable: {error}"
    return status

"""fastsr: performance-first image and video super-resolution inference."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Each name is imported on first use, so `import fastsr` (and `fastsr --help`) stays
# cheap (the API itself imports no torch; the graph frontends for modules and ONNX do).
_LAZY = {
    "Upscaler": "fastsr.api",
    "upscale": "fastsr.api",
    "upscale_folder": "fastsr.batch",
    "load": "fastsr.graph",
}

__all__ = ["Upscaler", "__version__", "load", "upscale", "upscale_folder"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fastsr' has no attribute {name!r}")

"""fastsr: performance-first image and video super-resolution inference."""

__version__ = "0.1.0"

# numpy only: torch is imported when a torch tensor, a module or a torch backend needs it.
from fastsr.api import Upscaler, upscale  # noqa: E402

__all__ = ["Upscaler", "__version__", "load", "upscale"]


def __getattr__(name: str):
    # `load` comes from the graph frontends, which pull in torch.fx and onnx: only on use.
    if name == "load":
        from fastsr.graph import load

        return load
    raise AttributeError(f"module 'fastsr' has no attribute {name!r}")

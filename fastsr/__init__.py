"""fastsr: performance-first image and video super-resolution inference."""

__version__ = "0.1.0"

__all__ = ["Upscaler", "__version__", "load", "upscale"]


def __getattr__(name: str):
    # Imported on first use: torch takes seconds to import, and `fastsr --help`, `--version`
    # or a mistyped path should answer at once.
    if name in ("upscale", "Upscaler"):
        from fastsr import api

        return getattr(api, name)
    if name == "load":
        from fastsr.graph import load

        return load
    raise AttributeError(f"module 'fastsr' has no attribute {name!r}")

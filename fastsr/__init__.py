"""fastsr: performance-first image and video super-resolution inference."""

__version__ = "0.1.0"

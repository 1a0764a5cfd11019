"""The standard SR evaluation over folders of HR images (Set5, Set14, ...)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fastsr.data import degrade, image_paths, imresize, is_grayscale, load_rgb
from fastsr.metrics import psnr_y, ssim_y

UpscaleFn = Callable[[np.ndarray], np.ndarray]

DEFAULT_DATA_DIR = Path("/work/shared/datasets/val")


def default_data_dir() -> Path:
    return Path(os.environ.get("FASTSR_DATA", DEFAULT_DATA_DIR))


def bicubic_upscaler(scale: int) -> UpscaleFn:
    return lambda lr: imresize(lr, scale)


def _score(sr: np.ndarray, hr: np.ndarray, scale: int, grayscale: bool) -> dict[str, float]:
    if sr.shape != hr.shape or sr.dtype != np.uint8:
        raise ValueError(f"upscaler returned {sr.dtype} {sr.shape}, expected uint8 {hr.shape}")
    return {"psnr": psnr_y(sr, hr, scale, grayscale), "ssim": ssim_y(sr, hr, scale, grayscale)}


def _mean(scores: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}


def evaluate(
    upscale_fn: UpscaleFn | None,
    data_dir: str | Path,
    scale: int,
    per_image: bool = False,
    datasets: list[str] | None = None,
    bicubic: bool = True,
) -> dict:
    """Score `upscale_fn` (uint8 HxWx3 RGB LR -> uint8 RGB SR) and bicubic on each subfolder
    that holds images, or on `data_dir` itself when none does.

    Returns {dataset: {"model": {"psnr", "ssim"}, "bicubic": {...}, "images": {...}}};
    "images" (per-image scores) only with `per_image`, "model" only with an upscaler.
    """
    methods = {"bicubic": bicubic_upscaler(scale)} if bicubic else {}
    if upscale_fn is not None:
        methods["model"] = upscale_fn
    data_dir = Path(data_dir)
    folders = sorted(p for p in data_dir.iterdir() if p.is_dir() and image_paths(p))
    if not folders:  # a plain folder of images is one dataset
        if not image_paths(data_dir):
            raise ValueError(
                f"no .png or .bmp images in {data_dir} or its subfolders; pass a folder of "
                "HR images or of dataset folders (Set5/, Set14/ ...)"
            )
        folders = [data_dir]
    results = {}
    for folder in folders:
        if datasets is not None and folder.name not in datasets:
            continue
        images = {}
        for path in image_paths(folder):
            lr, hr = degrade(load_rgb(path), scale)
            gray = is_grayscale(path)
            images[path.stem] = {
                name: _score(fn(lr), hr, scale, gray) for name, fn in methods.items()
            }
        summary = {name: _mean([scores[name] for scores in images.values()]) for name in methods}
        if per_image:
            summary["images"] = images
        results[folder.name] = summary
    return results


def format_report(results: dict) -> str:
    """A plain table of the `evaluate` results, model beside bicubic."""
    lines = []
    for dataset, summary in results.items():
        for method in ("model", "bicubic"):
            if method in summary:
                s = summary[method]
                lines.append(f"{dataset:10s} {method:8s} PSNR {s['psnr']:.2f} SSIM {s['ssim']:.4f}")
        for image, scores in summary.get("images", {}).items():
            cells = [f"{m} {s['psnr']:.2f}/{s['ssim']:.4f}" for m, s in scores.items()]
            lines.append(f"  {image:12s} " + "  ".join(cells))
    return "\n".join(lines)

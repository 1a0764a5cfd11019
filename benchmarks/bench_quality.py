"""Quality of the shipped models against bicubic: PSNR / SSIM on Y, the standard protocol.

Images come from FASTSR_DATA (Set5 / Set14 layout) or else from scikit-image's bundled
photos, so a fresh machine still gets a table. Quick mode uses small crops of two photos.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import config, network_specs


def skimage_folder(root: Path, quick: bool) -> Path:
    """root/skimage/<name>.png from the photos scikit-image ships (no download)."""
    from skimage import data

    settings = config()["quality"]
    names = settings["skimage_images"][: settings["quick_images"] if quick else None]
    folder = root / "skimage"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        image = np.asarray(getattr(data, name)())
        if quick:
            crop = settings["crop_quick"]
            top, left = (image.shape[0] - crop) // 2, (image.shape[1] - crop) // 2
            image = image[top : top + crop, left : left + crop]
        Image.fromarray(image).save(folder / f"{name}.png")
    return root


@pytest.fixture(scope="module")
def quality_data(tmp_path_factory, quick) -> tuple[Path, str]:
    """(folder of datasets, label saying where the images came from)."""
    given = os.environ.get("FASTSR_DATA")
    if given and not quick:
        return Path(given), f"FASTSR_DATA={given}"
    root = skimage_folder(tmp_path_factory.mktemp("quality"), quick)
    return root, "scikit-image sample photos" + (" (crops)" if quick else "")


def _record(benchmark, kind: str, name: str, scale: int, results: dict, source: str, key: str):
    scores = {dataset: summary[key] for dataset, summary in results.items()}
    benchmark.group = f"quality x{scale}"
    benchmark.extra_info.update(
        kind=kind,
        model=name,
        scale=scale,
        data=source,
        psnr=float(np.mean([s["psnr"] for s in scores.values()])),
        ssim=float(np.mean([s["ssim"] for s in scores.values()])),
        per_dataset=scores,
    )


SHIPPED = [name for name, spec in network_specs().items() if spec.shipped]


@pytest.mark.parametrize("name", SHIPPED or ["none shipped"])
def test_model_quality(benchmark, quality_data, threads, name):
    """Scored on what users get: fastsr.upscale with the shipped model, default backend."""
    if name not in network_specs():
        pytest.skip("no shipped weights in fastsr/weights yet: quality needs trained models")
    import fastsr
    from fastsr.evaluate import evaluate

    folder, source = quality_data
    scale = network_specs()[name].scale

    def upscale(lr):
        return fastsr.upscale(lr, scale=scale, model=name, threads=threads)

    results = benchmark.pedantic(evaluate, args=(upscale, folder, scale), rounds=1)
    _record(benchmark, "quality", name, scale, results, source, "model")
    for dataset, summary in results.items():
        # A trained SR model that does not beat bicubic on natural photos is broken.
        assert summary["model"]["psnr"] > summary["bicubic"]["psnr"], (dataset, summary)


@pytest.mark.parametrize("scale", config()["bicubic"]["scales"])
def test_bicubic_quality(benchmark, quality_data, scale):
    from fastsr.evaluate import evaluate

    folder, source = quality_data
    results = benchmark.pedantic(evaluate, args=(None, folder, scale), rounds=1)
    _record(benchmark, "quality", "bicubic", scale, results, source, "bicubic")
    for summary in results.values():
        assert np.isfinite(summary["bicubic"]["psnr"]) and 0 < summary["bicubic"]["ssim"] <= 1

"""What Ray costs on one machine: a 50-image folder and a 10 s video, the local path
against the Ray path with one worker of all the cores, on a Ray instance already up
(`--ray-address`: the cluster case) and on one started for the run (plain `--ray`).

Full runs only (`--benchmark-only`): each round is tens of seconds. The group table's
relative column is the overhead; docs/SCALE-OUT.md quotes it."""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from benchmarks.conftest import is_quick

IMAGES = 50
VIDEO_SECONDS, VIDEO_RATE, VIDEO_SIZE = 10, 24, (640, 360)
THREADS = len(os.sched_getaffinity(0))
MODEL = {"model": os.environ.get("FASTSR_BENCH_SCALE_MODEL", "quality_x2"), "backend": "cpu"}
VIDEO_MODEL = {"model": "fast_x2", "backend": "cpu"}
RUNNERS = ["local", "ray-running", "ray-started"]
VALIDATION = Path(os.environ.get("FASTSR_DATASETS", "/work/shared/datasets")) / "val"

ray = pytest.importorskip("ray", reason="needs fastsr[ray]")


@pytest.fixture(scope="module", autouse=True)
def full_runs_only(request):
    if is_quick(request.config):
        pytest.skip("scale-out rounds take tens of seconds: run with --benchmark-only")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """50 images: the Set5 and Set14 validation images, in turn, under distinct names."""
    sources = sorted(VALIDATION.glob("*/*.png"))
    if not sources:
        pytest.skip(f"no validation images in {VALIDATION}")
    root = tmp_path_factory.mktemp("images")
    for i in range(IMAGES):
        shutil.copy(sources[i % len(sources)], root / f"{i:02d}-{sources[i % len(sources)].name}")
    return root


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    import av

    path = tmp_path_factory.mktemp("video") / "in.mp4"
    width, height = VIDEO_SIZE
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height // 8, width // 8, 3), np.uint8).repeat(8, 0).repeat(8, 1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=VIDEO_RATE, options={"g": str(2 * VIDEO_RATE)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, VIDEO_RATE)
        for i in range(VIDEO_SECONDS * VIDEO_RATE):
            frame = av.VideoFrame.from_ndarray(np.roll(base, 4 * i, axis=1), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, VIDEO_RATE)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture
def session(request, runner):
    """A running Ray instance for "ray-running" (its start is not timed)."""
    if runner != "ray-running":
        yield
        return
    ray.init(num_cpus=THREADS, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


@pytest.mark.parametrize("runner", RUNNERS)
def test_folder(benchmark, folder, tmp_path, runner, session):
    from fastsr.api import Upscaler
    from fastsr.batch import plan_batch, run_batch
    from fastsr.distributed import run_batch_on_ray

    def run():
        batch = plan_batch([folder], _fresh(tmp_path / "out"))
        (tmp_path / "out").mkdir()
        if runner == "local":
            return run_batch(Upscaler(**MODEL, threads=THREADS), batch)
        return run_batch_on_ray(batch, MODEL, workers=1, threads_per_worker=THREADS,
                                progress=False)  # fmt: skip

    benchmark.group = f"scale-out folder {IMAGES} images {MODEL['model']}"
    benchmark.extra_info.update(runner=runner, images=IMAGES, threads=THREADS)
    report = benchmark.pedantic(run, rounds=2, iterations=1)
    assert len(report.done) == IMAGES


@pytest.mark.parametrize("runner", RUNNERS)
def test_video(benchmark, video, tmp_path, runner, session):
    from fastsr.api import Upscaler
    from fastsr.distributed import upscale_video_on_ray
    from fastsr.video import upscale_video

    def run():
        dst = tmp_path / "out.mp4"
        dst.unlink(missing_ok=True)
        if runner == "local":
            up = Upscaler(**VIDEO_MODEL, threads=THREADS)
            return upscale_video(video, dst, up, progress=False)
        return upscale_video_on_ray(video, dst, VIDEO_MODEL, workers=1,
                                    threads_per_worker=THREADS, progress=False)  # fmt: skip

    benchmark.group = f"scale-out video {VIDEO_SECONDS} s {VIDEO_SIZE[0]}x{VIDEO_SIZE[1]}"
    benchmark.extra_info.update(runner=runner, frames=VIDEO_SECONDS * VIDEO_RATE)
    result = benchmark.pedantic(run, rounds=2, iterations=1)
    assert result.frames == VIDEO_SECONDS * VIDEO_RATE

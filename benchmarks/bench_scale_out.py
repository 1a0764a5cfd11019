"""What Ray costs on one machine: a 50-image folder and a 10 s video, the local path
against the Ray path with one worker of all the cores, on a Ray instance already up
(`--ray-address`: the cluster case) and on one started for the run (plain `--ray`).

The machine is shared, so the runners take turns, round after round, and each round
counts CPU seconds as well as wall time: the CPU of this process and of every process
under it (Ray's GCS, raylet, agents and workers), per process. The medians of the
rounds and their ratios to the local path go into the benchmark JSON's extra_info and
are printed (run with -s); docs/SCALE-OUT.md quotes them.

Full runs only (`--benchmark-only`): each round is tens of seconds. FASTSR_BENCH_SCALE_ROUNDS
(default 3) sets the rounds, FASTSR_BENCH_SCALE_MODEL the folder's model."""

from __future__ import annotations

import os
import shutil
import statistics
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from benchmarks.conftest import is_quick

IMAGES = 50
VIDEO_SECONDS, VIDEO_RATE, VIDEO_SIZE = 10, 24, (640, 360)
THREADS = len(os.sched_getaffinity(0))
MODEL = {"model": os.environ.get("FASTSR_BENCH_SCALE_MODEL", "fast_x2"), "backend": "cpu"}
VIDEO_MODEL = {"model": "fast_x2", "backend": "cpu"}
RUNNERS = ("local", "ray-running", "ray-started")
ROUNDS = int(os.environ.get("FASTSR_BENCH_SCALE_ROUNDS", "3"))
SAMPLE_SECONDS = 0.5
SETTLE_SECONDS = 5  # a Ray instance just started imports and registers for a few seconds
VALIDATION = Path(os.environ.get("FASTSR_DATASETS", "/work/shared/datasets")) / "val"

ray = pytest.importorskip("ray", reason="needs fastsr[ray]")
psutil = pytest.importorskip("psutil", reason="counts the CPU of Ray's processes")


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


class TreeClock(threading.Thread):
    """CPU seconds of this process and every process under it while it runs, by process.
    Sampled every SAMPLE_SECONDS, so a process that ends mid-run counts up to its last
    sample; the sampling's own CPU (a scan of /proc) is taken off the driver's."""

    def __init__(self):
        super().__init__(daemon=True)
        self.me, self.stop, self.own = psutil.Process(), threading.Event(), 0.0
        self.first: dict = {}  # (pid, start time) -> CPU s when first seen
        self.last: dict = {}  # (pid, start time) -> (label, CPU s when last seen)
        self._sample(baseline=True)

    def _sample(self, baseline: bool = False) -> None:
        for process in [self.me, *self.me.children(recursive=True)]:
            try:
                with process.oneshot():
                    key, times = (process.pid, process.create_time()), process.cpu_times()
                    label = _label(process)
            except psutil.Error:  # it ended while we looked
                continue
            self.first.setdefault(key, times.user + times.system if baseline else 0.0)
            self.last[key] = (label, times.user + times.system)

    def run(self) -> None:
        start = time.thread_time()
        while not self.stop.wait(SAMPLE_SECONDS):
            self._sample()
        self.own = time.thread_time() - start

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join()
        self._sample()

    def by_process(self) -> dict[str, float]:
        spent: dict[str, float] = {}
        for key, (label, cpu) in self.last.items():
            spent[label] = spent.get(label, 0.0) + cpu - self.first[key]
        spent["driver"] -= self.own
        return spent


def _label(process) -> str:
    """'driver', 'raylet', 'ray::_ImageWorker', 'dashboard/agent.py'...: what it is."""
    if process.pid == os.getpid():
        return "driver"
    words = process.cmdline() or [process.name()]
    if words[0].startswith("ray::"):  # a worker's title: ray::Class.method
        return words[0].split(".")[0]
    script = next((w for w in words[1:] if w.endswith(".py")), None)
    return "/".join(Path(script).parts[-2:]) if script else Path(words[0]).name


def _round(run, runner: str) -> dict:
    """One timed run of `runner`; "ray-running" gets an instance started (untimed) first."""
    if runner == "ray-running":
        ray.init(num_cpus=THREADS, include_dashboard=False, logging_level="WARNING")
        time.sleep(SETTLE_SECONDS)
    try:
        with TreeClock() as clock:
            start = time.perf_counter()
            run(runner)
            wall = time.perf_counter() - start
    finally:
        if runner == "ray-running":
            ray.shutdown()
    spent = clock.by_process()
    return {"wall": wall, "cpu": sum(spent.values()), "by_process": spent}


def interleaved(benchmark, run, what: str) -> None:
    """ROUNDS rounds of every runner in turn; medians and ratios to local into extra_info."""
    load = [os.getloadavg()[0]]

    def rounds():
        taken = {runner: [] for runner in RUNNERS}
        for _ in range(ROUNDS):
            for runner in RUNNERS:
                taken[runner].append(_round(run, runner))
                load.append(os.getloadavg()[0])
        return taken

    taken = benchmark.pedantic(rounds, rounds=1, iterations=1)
    medians = {
        runner: {m: statistics.median(r[m] for r in runs) for m in ("wall", "cpu")}
        for runner, runs in taken.items()
    }
    local = medians["local"]
    benchmark.extra_info.update(
        what=what, threads=THREADS, rounds=ROUNDS, loadavg_1min=load, medians=medians,
        ratios={r: {m: v / local[m] for m, v in med.items()} for r, med in medians.items()},
        runs=taken,
    )  # fmt: skip
    print(f"\n{what}, {ROUNDS} rounds, load average {min(load):.1f}-{max(load):.1f}")
    for runner, med in medians.items():
        print(f"  {runner:12s} wall {med['wall']:7.1f} s ({med['wall'] / local['wall']:.3f}x)"
              f"  CPU {med['cpu']:7.1f} s ({med['cpu'] / local['cpu']:.3f}x)")  # fmt: skip
        last = taken[runner][-1]["by_process"]
        for label, cpu in sorted(last.items(), key=lambda item: -item[1]):
            if cpu >= 0.05:
                print(f"      {label:40s} {cpu:6.2f} CPU s (last round)")


def test_folder(benchmark, folder, tmp_path):
    from fastsr.api import Upscaler
    from fastsr.batch import plan_batch, run_batch
    from fastsr.distributed import run_batch_on_ray

    def run(runner: str):
        out = tmp_path / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        batch = plan_batch([folder], out)
        if runner == "local":
            report = run_batch(Upscaler(**MODEL, threads=THREADS), batch)
        else:
            report = run_batch_on_ray(batch, MODEL, workers=1, threads_per_worker=THREADS,
                                      progress=False)  # fmt: skip
        assert len(report.done) == IMAGES

    interleaved(benchmark, run, f"folder of {IMAGES} images, {MODEL['model']}")


def test_video(benchmark, video, tmp_path):
    from fastsr.api import Upscaler
    from fastsr.distributed import upscale_video_on_ray
    from fastsr.video import upscale_video

    def run(runner: str):
        dst = tmp_path / "out.mp4"
        dst.unlink(missing_ok=True)
        if runner == "local":
            up = Upscaler(**VIDEO_MODEL, threads=THREADS)
            result = upscale_video(video, dst, up, progress=False)
        else:
            result = upscale_video_on_ray(video, dst, VIDEO_MODEL, workers=1,
                                          threads_per_worker=THREADS, progress=False)  # fmt: skip
        assert result.frames == VIDEO_SECONDS * VIDEO_RATE

    width, height = VIDEO_SIZE
    interleaved(benchmark, run, f"video of {VIDEO_SECONDS} s {width}x{height}, fast_x2")

"""Folders and videos on a Ray cluster (`pip install fastsr[ray]`; Ray is imported only
when one of these functions runs).

Each Ray worker is an actor that builds one `Upscaler` when it starts (the model is
loaded and planned once per worker) and then upscales many inputs. Workers read their
inputs and write their outputs themselves, so the driver only ever handles file names
and small results: inputs and outputs must be on storage every node sees (the same
paths), as they are on one machine or on a shared file system.

Folders and videos run on the same pool of Ray actors (`_Worker`), one task per worker
at a time: a batch of (source, target) names, or a segment. Ray Data's `map_batches`
over an actor pool is the textbook form of the folder case, but its streaming executor
and helper actors cost a quarter of a 50-image job's CPU on a 2-core machine
(docs/SCALE-OUT.md) for what a task queue does here. Each output is written atomically
by `fastsr.batch.upscale_image`, so a re-run with `skip_existing` skips what is done; a
batch whose worker died is retried one task per image, so an image that kills its
worker fails alone and the others are done.

Videos run as a segmented job (`fastsr.segments`): the driver plans the keyframe
segments and keeps the manifest; workers each decode, upscale and encode one segment at
a time into the job folder; the driver joins them. A segment whose worker died, or
that failed, is retried on a worker (at most `RETRIES` times); a segment that fails for
good is reported after the others are done, and `resume=True` picks the job up again.

See docs/SCALE-OUT.md for how this behaves on many machines.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from fastsr.batch import FAILED, BatchReport, ImageOptions, ImageResult, upscale_image
from fastsr.segments import (
    SEGMENT_SECONDS,
    Encoding,
    Segment,
    SegmentResult,
    job_identity,
    open_job,
    run_job,
    segment_path,
    transcode_segment,
)
from fastsr.video import VideoResult, _av, _encoder_codec, _one_line

RETRIES = 2  # further attempts of a task whose worker died or that failed
WORKER_RESTARTS = 3  # a worker process that dies is started again this often
_POLL_SECONDS = 0.2  # how often the driver looks at finished tasks and progress
_CALL_TIMEOUT = 60.0  # seconds for a small call to a helper actor (never hang)
_FRAMES_PER_REPORT = 8  # a worker tells the progress bar every this many frames


def _ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs Ray: pip install 'fastsr[ray]'") from None
    return ray


@contextmanager
def ray_session(address: str | None = None):
    """Ray, connected: to `address`, else to a local instance started for the run (and
    stopped after it). A session already open (ray.init by the caller) is used as it is."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    # Ray starts its workers at niceness +15 so that its own daemons stay responsive;
    # on a machine shared with other work that slows the upscaling the user started at
    # their niceness (measured: docs/SCALE-OUT.md). An instance of our own runs them at it.
    started = {} if address else {"_system_config": {"worker_niceness": 0}}
    ray.init(address=address, include_dashboard=False, logging_level="WARNING", **started)
    try:
        yield ray
    finally:
        ray.shutdown()


class _Counter:
    """Images or frames done by the workers since the driver last asked (a Ray actor)."""

    def __init__(self):
        self.count = 0

    def add(self, count: int) -> None:
        self.count += count

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


def _pool_size(ray, workers: int | None, threads_per_worker: int) -> int:
    if workers is not None:
        return workers
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, cpus // threads_per_worker)


def _worker_upscaler(upscaler_options: dict, threads: int):
    from fastsr.api import Upscaler

    return Upscaler(**{**upscaler_options, "threads": threads})


class _Worker:
    """A Ray actor: one Upscaler, built when it starts, for many batches of images or
    segments of a video; it tells `counter` of each image and of every few frames."""

    def __init__(self, upscaler_options: dict, threads: int, counter):
        self.up, self.counter = _worker_upscaler(upscaler_options, threads), counter

    def images(self, jobs: list, options: ImageOptions, skip: bool) -> list[ImageResult]:
        results = []
        for _, source, target in jobs:
            results.append(upscale_image(self.up, source, target, options, skip))
            self.counter.add.remote(1)
        return results

    def segment(self, src: str, path: str, segment: Segment, encoding: Encoding) -> SegmentResult:
        unreported = 0

        def on_frames(n: int) -> None:
            nonlocal unreported
            unreported += n
            if unreported >= _FRAMES_PER_REPORT:
                self.counter.add.remote(unreported)
                unreported = 0

        result = transcode_segment(Path(src), Path(path), self.up, segment, encoding, on_frames)
        self.counter.add.remote(unreported)
        return result


class _Pool:
    """Workers doing one task each at a time; a worker that dies is replaced by a new
    one, at most WORKER_RESTARTS times per worker of the pool."""

    def __init__(self, ray, make_worker, size: int, timeout: float | None = None):
        self.ray, self.make_worker, self.timeout = ray, make_worker, timeout
        self.idle = [make_worker() for _ in range(size)]
        self.replacements = WORKER_RESTARTS * size
        self.running: dict = {}  # object ref -> (task, attempt, worker, started)

    def submit(self, task, attempt: int, call) -> None:
        """call(worker): the object ref of the worker's method running `task`."""
        worker = self.idle.pop()
        self.running[call(worker, task)] = (task, attempt, worker, time.monotonic())

    def finished(self):
        """(task, attempt, result or error) for the tasks done since last asked."""
        if not self.running:
            return
        refs = list(self.running)
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=_POLL_SECONDS)
        if ready:  # and any others done by now
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            task, attempt, worker, _ = self.running.pop(ref)
            try:
                outcome = self.ray.get(ref, timeout=_CALL_TIMEOUT)
            except self.ray.exceptions.RayActorError as error:  # the worker died
                outcome, worker = error, self._replace(worker)
            except Exception as error:  # the task's own failure, raised in the worker
                outcome = error
            if worker is not None:
                self.idle.append(worker)
            yield task, attempt, outcome
        yield from self._overdue()

    def _replace(self, worker):
        self.ray.kill(worker)
        if self.replacements == 0:
            return None  # the pool goes on without it
        self.replacements -= 1
        return self.make_worker()

    def _overdue(self):
        if self.timeout is None:
            return
        now = time.monotonic()
        for ref, (task, attempt, worker, started) in list(self.running.items()):
            if now - started > self.timeout:
                del self.running[ref]
                replacement = self._replace(worker)
                if replacement is not None:
                    self.idle.append(replacement)
                yield task, attempt, TimeoutError(f"no result after {self.timeout:g} s")

    def close(self) -> None:
        for worker in [*self.idle, *(w for _, _, w, _ in self.running.values())]:
            self.ray.kill(worker)


def _run_tasks(ray, pool: _Pool, counter, tasks: list, call, on_result, on_progress,
               split=lambda task: [task]) -> list:  # fmt: skip
    """Every task on the pool: on_result(task, result) for each done, on_progress(n) as
    the workers count. A failed task is tried again as split(task) (a batch: one task
    per image), at most RETRIES times; returns [(task, error)] of those that failed for
    good."""
    queue = [(task, 0) for task in tasks]
    failures = []
    while queue or pool.running:
        while queue and pool.idle:
            pool.submit(*queue.pop(0), call)
        if not pool.idle and not pool.running:
            raise RuntimeError("every Ray worker died too often; see the Ray logs")
        for task, attempt, outcome in pool.finished():
            if not isinstance(outcome, BaseException):
                on_result(task, outcome)
            elif attempt < RETRIES:
                queue.extend((part, attempt + 1) for part in split(task))
            else:
                failures.append((task, outcome))
        on_progress(ray.get(counter.take.remote(), timeout=_CALL_TIMEOUT))
    return failures


def _failure(error: BaseException) -> str:
    if isinstance(error, _ray().exceptions.RayActorError):
        return f"its Ray worker died ({RETRIES + 1} times; see the Ray logs)"
    cause = getattr(error, "cause", None)  # a RayTaskError carries the worker's exception
    return _one_line(cause if isinstance(cause, BaseException) else error)


@contextmanager
def _worker_pool(ray, upscaler_options: dict, threads: int, size: int, timeout=None):
    """(pool, counter): `size` workers of `threads` CPUs each, killed after the job (also
    when the session stays open, the caller's)."""
    counter = ray.remote(num_cpus=0)(_Counter).remote()
    worker_class = ray.remote(num_cpus=threads)(_Worker)
    pool = _Pool(ray, lambda: worker_class.remote(upscaler_options, threads, counter), size,
                 timeout)  # fmt: skip
    try:
        yield pool, counter
    finally:
        pool.close()
        ray.kill(counter)


# -- folders ------------------------------------------------------------------------------


def run_batch_on_ray(
    batch,
    upscaler_options: dict,
    options: ImageOptions = ImageOptions(),  # noqa: B008 (frozen: safe to share)
    skip_existing: bool = False,
    *,
    address: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> BatchReport:
    """`fastsr.batch.run_batch` on Ray: the jobs of `batch` (a `fastsr.batch.Batch`)
    upscaled in batches of `batch_size` images by `workers` actors of
    `threads_per_worker` CPU threads each (default: as many as the cluster's CPUs hold),
    each building `Upscaler(**upscaler_options)`. `progress`: a bar over the images
    (None: when stderr is a terminal)."""

    _worker_upscaler(upscaler_options, threads_per_worker)  # bad options fail here, once
    start = time.perf_counter()
    report = BatchReport(skipped_folders=list(batch.skipped_folders))
    for path in batch.not_images:
        report.results.append(ImageResult(path, path, "skipped", "not an image file"))
    jobs = [(i, str(source), str(target)) for i, (source, target) in enumerate(batch.jobs)]
    done: dict[int, ImageResult] = {}
    if jobs:
        _run_images_on_ray(jobs, done, upscaler_options, options, skip_existing, address,
                           workers, threads_per_worker, batch_size, progress)  # fmt: skip
    report.results.extend(done[i] for i in range(len(jobs)))
    report.seconds = time.perf_counter() - start
    return report


def _run_images_on_ray(jobs, done, upscaler_options, options, skip, address, workers,
                       threads, batch_size, progress) -> None:  # fmt: skip
    from tqdm import tqdm

    def call(worker, task: list):
        return worker.images.remote(task, options, skip)

    def on_result(task: list, results: list) -> None:
        done.update((index, result) for (index, _, _), result in zip(task, results, strict=True))

    with ray_session(address) as ray:
        size = min(_pool_size(ray, workers, threads), len(jobs))
        per_task = batch_size or max(1, min(8, len(jobs) // (4 * size)))
        tasks = [jobs[i : i + per_task] for i in range(0, len(jobs), per_task)]
        disable = None if progress is None else not progress  # None: on a terminal only
        with (
            tqdm(total=len(jobs), unit="image", delay=1, disable=disable) as bar,
            _worker_pool(ray, upscaler_options, threads, size) as (pool, counter),
        ):

            def on_progress(count: int) -> None:
                bar.update(min(count, bar.total - bar.n))  # a retried batch recounts

            failures = _run_tasks(ray, pool, counter, tasks, call, on_result, on_progress,
                                  split=lambda task: [[job] for job in task])  # fmt: skip
            bar.update(bar.total - bar.n)
    for task, error in failures:  # one image each: failed batches are retried split
        for index, source, target in task:
            done[index] = ImageResult(Path(source), Path(target), FAILED, _failure(error))


# -- videos -------------------------------------------------------------------------------


def upscale_video_on_ray(
    src,
    dst,
    upscaler_options: dict,
    *,
    codec: str = "libx264",
    crf: int | None = None,
    pix_fmt: str | None = None,
    strict: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    segment_seconds: float | None = None,
    address: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    segment_timeout: float | None = None,
    progress: bool = True,
) -> VideoResult:
    """`fastsr.segments.upscale_video_resumable` with the segments spread over Ray
    workers (`run_batch_on_ray` says how many). segment_timeout: seconds after which a
    segment's task is cancelled and retried (default: no limit). Raises
    `fastsr.segments.JobIncomplete` when segments failed for good; the others are kept
    for `resume=True`."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"no video file at {src}")
    encoding = Encoding(codec, crf, pix_fmt, strict)
    _encoder_codec(_av(), codec)
    up = _worker_upscaler(upscaler_options, threads_per_worker)  # checks; the job's identity
    seconds = SEGMENT_SECONDS if segment_seconds is None else segment_seconds
    manifest = open_job(src, dst, job_identity(src, up, encoding), seconds, resume, overwrite)
    todo = [s for s in manifest.segments if not manifest.finished(s)]
    folder = manifest.folder

    def call(worker, segment: Segment):
        path = segment_path(folder, segment.index)
        return worker.segment.remote(str(src), str(path), segment, encoding)

    with ray_session(address) as ray:
        size = max(1, min(_pool_size(ray, workers, threads_per_worker), len(todo)))
        with _worker_pool(ray, upscaler_options, threads_per_worker, size,
                          segment_timeout) as (pool, counter):  # fmt: skip

            def work(segments: list[Segment], record, on_frames) -> dict:
                failures = _run_tasks(ray, pool, counter, segments, call, record, on_frames)
                return {segment.index: _failure(error) for segment, error in failures}

            return run_job(manifest, src, dst, work, progress)

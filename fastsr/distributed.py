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
batch whose worker died is retried one task per image not yet done, so an image that
kills its worker fails alone and the others are done.

Progress comes with the results: a worker's task is a Ray generator task that streams
each image's result, or a video segment's frame count every few frames and then its
result, and the driver's one loop moves the bar as they arrive (no counter actor: a
Python process of its own, the largest of Ray's costs here once Ray Data was gone).

A run that starts its own instance (no address) spends seconds importing Ray and
starting the head and then a worker, on the machine the driver is on; the driver
upscales meanwhile, one image or segment at a time, with the Upscaler it built to check
the options (`_DriverLane`), and leaves the rest to the pool once a worker has started.
What it does goes through the same loop as a worker's (progress, retries on the pool).

Videos run as a segmented job (`fastsr.segments`): the driver plans the keyframe
segments and keeps the manifest; workers each decode, upscale and encode one segment at
a time into the job folder; the driver joins them. A segment whose worker died, or
that failed, is retried on a worker (at most `RETRIES` times); a segment that fails for
good is reported after the others are done, and `resume=True` picks the job up again.

See docs/SCALE-OUT.md for how this behaves on many machines.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import sys
import threading
import time
from contextlib import closing, contextmanager
from itertools import chain
from pathlib import Path

from fastsr.batch import FAILED, BatchReport, ImageOptions, ImageResult, upscale_image
from fastsr.ray_instance import own_instance
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
_CALL_TIMEOUT = 60.0  # seconds to fetch an item a worker streamed (never hang)
_FRAMES_PER_REPORT = 8  # a video worker streams its frame count every this many frames
_END = object()  # a task's stream ended


def _ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs Ray: pip install 'fastsr[ray]'") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, cpus: int | None = None):
    """Ray, connected: to `address` (as it is), else to a local instance started for the
    run with only the processes a job uses, and ended after it (`fastsr.ray_instance`),
    with `cpus` CPUs (None: the machine's), so that as many workers as asked for can
    start. A session already open (ray.init by the caller) is used as it is."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    if not address:
        with own_instance(ray, cpus):
            yield ray
        return
    ray.init(address=address, logging_level="WARNING")
    try:
        yield ray
    finally:
        ray.shutdown()


def _cpus(workers: int | None, threads_per_worker: int) -> int | None:
    """CPUs an instance started for the run needs: the machine's, or more if more
    workers were asked for than it has cores."""
    if workers is None:
        return None
    return max(workers * threads_per_worker, os.cpu_count() or 1)


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
    segments of a video. Its methods are generators, called as Ray streaming tasks."""

    def __init__(self, upscaler_options: dict, threads: int):
        self.up = _worker_upscaler(upscaler_options, threads)

    def images(self, jobs: list, options: ImageOptions, skip: bool):
        yield from _images(self.up, jobs, options, skip)

    def segment(self, src: str, path: str, segment: Segment, encoding: Encoding):
        yield from _segment(self.up, src, path, segment, encoding)


def _images(up, jobs: list, options: ImageOptions, skip: bool):
    """(index, ImageResult) of each image, as it is done."""
    for index, source, target in jobs:
        yield index, upscale_image(up, source, target, options, skip)


def _segment(up, src: str, path: str, segment: Segment, encoding: Encoding):
    """The frames upscaled so far, every few frames and at the end, then the
    SegmentResult."""
    frames = reported = 0
    for item in _streamed(lambda on_frames: transcode_segment(
            Path(src), Path(path), up, segment, encoding, on_frames)):  # fmt: skip
        if isinstance(item, SegmentResult):
            if frames > reported:
                yield frames
            yield item
            return
        frames += item
        if frames - reported >= _FRAMES_PER_REPORT:
            yield frames
            reported = frames


def _streamed(run):
    """run(report) in a thread, as a generator of what it reports, then of what it
    returns (or raising what it raised): a callback cannot yield from a Ray task."""
    reports, outcome = queue.SimpleQueue(), {}

    def target() -> None:
        try:
            outcome["value"] = run(reports.put)
        except BaseException as error:  # raised again in the generator
            outcome["error"] = error
        reports.put(_END)

    thread = threading.Thread(target=target, name="fastsr-segment", daemon=True)
    thread.start()
    while (item := reports.get()) is not _END:
        yield item
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    yield outcome["value"]


class _Pool:
    """Workers doing one task each at a time, each idle once it has started (built its
    Upscaler); a worker that dies is replaced by a new one, at most WORKER_RESTARTS times
    per worker of the pool."""

    def __init__(self, ray, make_worker, size: int, timeout: float | None = None):
        self.ray, self.make_worker, self.timeout = ray, make_worker, timeout
        self.starting: dict = {}  # ready ref -> worker
        self.idle: list = []
        self.running: dict = {}  # stream -> (task, attempt, worker, started)
        self.replacements = WORKER_RESTARTS * size
        for _ in range(size):
            self._start()

    def _start(self) -> None:
        worker = self.make_worker()
        self.starting[worker.__ray_ready__.remote()] = worker

    def submit(self, task, attempt: int, call) -> None:
        """call(worker, task): the worker's method running `task`, as a Ray generator."""
        worker = self.idle.pop()
        self.running[call(worker, task)] = (task, attempt, worker, time.monotonic())

    def streamed(self):
        """(task, attempt, outcome) for what the running tasks streamed since last asked:
        an item, _END when a task is done, or the error that ended it. Workers that have
        started meanwhile become idle."""
        waiting = [*self.running, *self.starting]
        if not waiting:
            return
        ready, _ = self.ray.wait(waiting, num_returns=1, timeout=_POLL_SECONDS)
        if ready:  # and any others with an item by now
            ready, _ = self.ray.wait(waiting, num_returns=len(waiting), timeout=0)
        for ref in ready:
            if ref in self.starting:
                self._started(ref)
                continue
            task, attempt, worker, _ = self.running[ref]
            try:
                outcome = self.ray.get(next(ref), timeout=_CALL_TIMEOUT)
            except StopIteration:
                outcome = _END
            except self.ray.exceptions.RayActorError as error:  # the worker died
                self._replace(worker)
                outcome, worker = error, None
            except Exception as error:  # the task's own failure, raised in the worker
                outcome = error
            if outcome is _END or isinstance(outcome, BaseException):
                del self.running[ref]
                if worker is not None:
                    self.idle.append(worker)
            yield task, attempt, outcome
        yield from self._overdue()

    def _started(self, ready) -> None:
        worker = self.starting.pop(ready)
        try:
            self.ray.get(ready, timeout=_CALL_TIMEOUT)
        except self.ray.exceptions.RayActorError:  # it died starting
            self._replace(worker)
            return
        self.idle.append(worker)

    def _replace(self, worker) -> None:
        """Kills `worker` and starts another in its place, if any replacement is left
        (else the pool goes on without it)."""
        self.ray.kill(worker)
        if self.replacements > 0:
            self.replacements -= 1
            self._start()

    def _overdue(self):
        if self.timeout is None:
            return
        now = time.monotonic()
        for ref, (task, attempt, worker, started) in list(self.running.items()):
            if now - started > self.timeout:
                del self.running[ref]
                self._replace(worker)
                yield task, attempt, TimeoutError(f"no result after {self.timeout:g} s")

    def close(self) -> None:
        running = (worker for _, _, worker, _ in self.running.values())
        for worker in [*self.starting.values(), *self.idle, *running]:
            self.ray.kill(worker)


class _Todo:
    """The tasks not begun yet, as (task, attempt), taken by the pool and by the driver's
    lane under one lock."""

    def __init__(self, tasks: list):
        self.lock, self.items = threading.Lock(), [(task, 0) for task in tasks]

    def __bool__(self) -> bool:
        return bool(self.items)

    def take(self, split=None) -> tuple | None:
        """The first (task, attempt), or None; with split: split(task)[0] of it, the rest
        of split(task) put back first."""
        with self.lock:
            if not self.items:
                return None
            task, attempt = self.items.pop(0)
            if split is not None:
                task, *rest = split(task)
                self.items[:0] = [(part, attempt) for part in rest]
            return task, attempt

    def add(self, tasks: list, attempt: int) -> None:
        with self.lock:
            self.items += [(task, attempt) for task in tasks]

    def batched(self, size: int) -> None:
        """Each task (a list of images) cut into tasks of `size` images at most."""
        with self.lock:
            self.items = [(task[i : i + size], attempt) for task, attempt in self.items
                          for i in range(0, len(task), size)]  # fmt: skip


class _DriverLane:
    """The driver's own Upscaler doing tasks, one part at a time (an image, a segment),
    while the Ray instance started for the run and its workers start: seconds of start-up
    on this machine, which the driver spends upscaling (docs/SCALE-OUT.md). It takes no
    part after stop(), which the driver's loop calls once a worker has started; what it
    streams goes through that loop as a worker's does."""

    def __init__(self, run, todo: _Todo, split=None):
        self.run, self.todo, self.split = run, todo, split
        self.items, self.busy = queue.SimpleQueue(), True
        self.stopping, self.aborting = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._work, name="fastsr-driver", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        try:
            while not self.stopping.is_set() and (part := self.todo.take(self.split)):
                self._do(*part)
        finally:
            self.items.put(_END)

    def _do(self, task, attempt: int) -> None:
        try:
            with closing(self.run(task)) as stream:
                for item in stream:
                    if self.aborting.is_set():
                        return
                    self.items.put((task, attempt, item))
        except Exception as error:  # the task's own failure: tried again on the pool
            self.items.put((task, attempt, error))
        else:
            self.items.put((task, attempt, _END))

    def streamed(self, timeout: float):
        """What the lane streamed, as `_Pool.streamed`, waiting up to `timeout` for it."""
        while self.busy:
            try:
                item = self.items.get(timeout=timeout) if timeout else self.items.get_nowait()
            except queue.Empty:
                return
            timeout = 0
            if item is _END:
                self.busy = False
            else:
                yield item

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        """Stops it, and its task at the next item (the job is over: an error, Ctrl-C)."""
        self.aborting.set()
        self.stopping.set()
        self.thread.join()


@contextmanager
def _driver_lane(address: str | None, run, todo: _Todo, split=None):
    """A _DriverLane when the run starts its own Ray instance, on this machine (the
    driver's outputs are where the workers' go); else None."""
    session_open = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    if address or session_open or importlib.util.find_spec("ray") is None:
        yield None
        return
    lane = _DriverLane(run, todo, split)
    try:
        yield lane
    finally:
        lane.close()


def _run_tasks(pool: _Pool, todo: _Todo, call, on_item, retry=lambda task: [task],
               lane: _DriverLane | None = None) -> list:  # fmt: skip
    """Every task of `todo` on the pool, and on the driver's lane until a worker has
    started: on_item(task, item) for each item streamed. A failed task is tried again as
    retry(task) (a batch: its images not yet done, one task each), at most RETRIES
    times, on the pool; returns [(task, error)] of those that failed for good."""
    failures = []
    while todo or pool.running or (lane is not None and lane.busy):
        if lane is not None and pool.idle:
            lane.stop()  # the rest is the pool's
        while pool.idle and (part := todo.take()):
            pool.submit(*part, call)
        if not pool.idle and not pool.running and not pool.starting:
            raise RuntimeError("every Ray worker died too often; see the Ray logs")
        waits = pool.running or pool.starting  # else it is the lane that is waited on
        lane_items = lane.streamed(0 if waits else _POLL_SECONDS) if lane is not None else ()
        for task, attempt, outcome in chain(lane_items, pool.streamed()):
            if not isinstance(outcome, BaseException):
                if outcome is not _END:
                    on_item(task, outcome)
            elif attempt < RETRIES:
                todo.add(retry(task), attempt + 1)
            else:
                failures.append((task, outcome))
    return failures


def _failure(error: BaseException) -> str:
    if isinstance(error, _ray().exceptions.RayActorError):
        return f"its Ray worker died ({RETRIES + 1} times; see the Ray logs)"
    cause = getattr(error, "cause", None)  # a RayTaskError carries the worker's exception
    return _one_line(cause if isinstance(cause, BaseException) else error)


@contextmanager
def _worker_pool(ray, upscaler_options: dict, threads: int, size: int, timeout=None):
    """`size` workers of `threads` CPUs each, killed after the job (also when the session
    stays open, the caller's)."""
    worker_class = ray.remote(num_cpus=threads)(_Worker)
    pool = _Pool(ray, lambda: worker_class.remote(upscaler_options, threads), size, timeout)
    try:
        yield pool
    finally:
        pool.close()


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

    up = _worker_upscaler(upscaler_options, threads_per_worker)  # bad options fail here
    start = time.perf_counter()
    report = BatchReport(skipped_folders=list(batch.skipped_folders))
    for path in batch.not_images:
        report.results.append(ImageResult(path, path, "skipped", "not an image file"))
    jobs = [(i, str(source), str(target)) for i, (source, target) in enumerate(batch.jobs)]
    done: dict[int, ImageResult] = {}
    if jobs:
        _run_images_on_ray(jobs, done, upscaler_options, up, options, skip_existing, address,
                           workers, threads_per_worker, batch_size, progress)  # fmt: skip
    report.results.extend(done[i] for i in range(len(jobs)))
    report.seconds = time.perf_counter() - start
    return report


def _run_images_on_ray(jobs, done, upscaler_options, up, options, skip, address, workers,
                       threads, batch_size, progress) -> None:  # fmt: skip
    from tqdm import tqdm

    def call(worker, task: list):
        return worker.images.options(num_returns="streaming").remote(task, options, skip)

    def not_done(task: list) -> list:
        return [[job] for job in task if job[0] not in done]

    def first_image(task: list) -> list:
        return [task[:1], task[1:]] if len(task) > 1 else [task]

    todo = _Todo([jobs])  # batched once the pool's size is known
    disable = None if progress is None else not progress  # None: on a terminal only
    with (
        tqdm(total=len(jobs), unit="image", delay=1, disable=disable) as bar,
        _driver_lane(address, lambda task: _images(up, task, options, skip), todo,
                     first_image) as lane,
        ray_session(address, _cpus(workers, threads)) as ray,
    ):  # fmt: skip
        size = min(_pool_size(ray, workers, threads), len(jobs))
        todo.batched(batch_size or max(1, min(8, len(jobs) // (4 * size))))
        with _worker_pool(ray, upscaler_options, threads, size) as pool:

            def on_item(task: list, item: tuple) -> None:
                index, result = item
                done[index] = result
                bar.update(1)

            failures = _run_tasks(pool, todo, call, on_item, retry=not_done, lane=lane)
    for task, error in failures:  # one image each: failed batches are retried split
        for index, source, target in task:
            if index not in done:  # its result came before the worker died
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
    folder = manifest.folder

    def call(worker, segment: Segment):
        path = segment_path(folder, segment.index)
        return worker.segment.options(num_returns="streaming").remote(
            str(src), str(path), segment, encoding
        )

    def by_driver(segment: Segment):
        return _segment(up, str(src), str(segment_path(folder, segment.index)), segment,
                        encoding)  # fmt: skip

    def work(segments: list[Segment], record, on_frames) -> dict:
        counted: dict[int, int] = {}  # frames on the bar per segment: a retry recounts

        def on_item(segment: Segment, item) -> None:
            if isinstance(item, SegmentResult):
                record(segment, item)
                return
            before = counted.get(segment.index, 0)
            if item > before:
                on_frames(item - before)
                counted[segment.index] = item

        todo = _Todo(segments)
        with (
            _driver_lane(address, by_driver, todo) as lane,
            ray_session(address, _cpus(workers, threads_per_worker)) as ray,
        ):
            size = max(1, min(_pool_size(ray, workers, threads_per_worker), len(segments)))
            with _worker_pool(ray, upscaler_options, threads_per_worker, size,
                              segment_timeout) as pool:  # fmt: skip
                failures = _run_tasks(pool, todo, call, on_item, lane=lane)
        return {segment.index: _failure(error) for segment, error in failures}

    return run_job(manifest, src, dst, work, progress)

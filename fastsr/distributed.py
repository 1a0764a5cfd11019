"""Folders and videos on a Ray cluster (`pip install fastsr[ray]`; Ray is imported only
when one of these functions runs).

Each Ray worker is an actor that builds one `Upscaler` when it starts (the model is
loaded and planned once per worker) and then upscales many inputs. Workers read their
inputs and write their outputs themselves, so the driver only ever handles file names
and small results: inputs and outputs must be on storage every node sees (the same
paths), as they are on one machine or on a shared file system.

Folders run as a Ray Data pipeline: `map_batches` with a stateful callable class on an
actor pool, over rows of (source, target) names; each output is written atomically by
`fastsr.batch.upscale_image`, so a re-run with `skip_existing` skips what is done.

Videos run as a segmented job (`fastsr.segments`): the driver plans the keyframe
segments and keeps the manifest; workers each decode, upscale and encode one segment at
a time into the job folder; the driver joins them. A segment whose worker died, or
that failed, is retried on a worker (at most `RETRIES` times); a segment that fails for
good is reported after the others are done, and `resume=True` picks the job up again.

See docs/SCALE-OUT.md for how this behaves on many machines.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from fastsr.batch import BatchReport, ImageOptions, ImageResult, upscale_image
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

RETRIES = 2  # further attempts of a segment whose worker died or that failed
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
    ray.init(address=address, include_dashboard=False, logging_level="WARNING")
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


# -- folders ------------------------------------------------------------------------------


class _ImageWorker:
    """A Ray Data actor: one Upscaler, many batches of (source, target) rows; it tells
    `counter` of each image it finishes, for the driver's progress bar."""

    def __init__(self, upscaler_options: dict, threads: int, options: ImageOptions, skip: bool,
                 counter):  # fmt: skip
        self.up = _worker_upscaler(upscaler_options, threads)
        self.options, self.skip, self.counter = options, skip, counter

    def __call__(self, batch: dict) -> dict:
        results = []
        for source, target in zip(batch["source"], batch["target"], strict=True):
            results.append(upscale_image(self.up, source, target, self.options, self.skip))
            self.counter.add.remote(1)
        return {
            "index": batch["index"],
            "status": [r.status for r in results],
            "reason": [r.reason for r in results],
            "seconds": [r.seconds for r in results],
            "width": [r.width for r in results],
            "height": [r.height for r in results],
            "bytes": [r.bytes for r in results],
        }


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
    upscaled by `workers` actors of `threads_per_worker` CPU threads each (default: as
    many as the cluster's CPUs hold), each building `Upscaler(**upscaler_options)`.
    `progress`: a bar over the images (None: when stderr is a terminal)."""
    from tqdm import tqdm

    _worker_upscaler(upscaler_options, threads_per_worker)  # bad options fail here, once
    start = time.perf_counter()
    report = BatchReport(skipped_folders=list(batch.skipped_folders))
    for path in batch.not_images:
        report.results.append(ImageResult(path, path, "skipped", "not an image file"))
    jobs = batch.jobs
    if not jobs:
        report.seconds = time.perf_counter() - start
        return report
    with ray_session(address) as ray:
        import ray.data

        logging.getLogger("ray.data").setLevel(logging.ERROR)  # no per-run notes
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # fastsr's own bar covers the job
        context.print_on_execution_start = False
        counter = ray.remote(num_cpus=0)(_Counter).remote()
        pool = min(_pool_size(ray, workers, threads_per_worker), len(jobs))
        size = batch_size or max(1, min(8, len(jobs) // (4 * pool)))
        rows = [{"index": i, "source": str(s), "target": str(t)} for i, (s, t) in enumerate(jobs)]
        results = ray.data.from_items(rows, override_num_blocks=len(jobs) // size or 1)
        with warnings.catch_warnings():  # bounded retries have no named parameter yet
            warnings.simplefilter("ignore", DeprecationWarning)
            results = results.map_batches(
                _ImageWorker,
                fn_constructor_args=(
                    upscaler_options, threads_per_worker, options, skip_existing, counter
                ),
                batch_size=size,
                compute=ray.data.ActorPoolStrategy(size=pool),
                num_cpus=threads_per_worker,
                max_restarts=WORKER_RESTARTS,  # Ray Data's default: restart and retry forever
                max_task_retries=RETRIES,
            )
        done: dict[int, ImageResult] = {}
        disable = None if progress is None else not progress  # None: on a terminal only
        with tqdm(total=len(jobs), unit="image", delay=1, disable=disable) as bar:
            collecting = _Background(_collect_results, results, jobs, done)
            try:
                while collecting.is_alive():
                    collecting.join(_POLL_SECONDS)
                    finished = ray.get(counter.take.remote(), timeout=_CALL_TIMEOUT)
                    bar.update(min(finished, bar.total - bar.n))  # a retried batch recounts
            finally:
                ray.kill(counter)
            bar.update(bar.total - bar.n)
    if collecting.error is not None:
        raise collecting.error
    report.results.extend(done[i] for i in range(len(jobs)))
    report.seconds = time.perf_counter() - start
    return report


def _collect_results(results, jobs, done: dict[int, ImageResult]) -> None:
    for rows_done in results.iter_batches(batch_size=None, batch_format="numpy"):
        for k, index in enumerate(rows_done["index"]):
            source, target = jobs[int(index)]
            done[int(index)] = ImageResult(
                source, target, str(rows_done["status"][k]), str(rows_done["reason"][k]),
                float(rows_done["seconds"][k]), int(rows_done["width"][k]),
                int(rows_done["height"][k]), int(rows_done["bytes"][k]),
            )  # fmt: skip


class _Background(threading.Thread):
    """run(*args), started in a thread; what it raises is kept in .error for the caller."""

    def __init__(self, run, *args):
        super().__init__(daemon=True)
        self.run_args, self.error = (run, args), None
        self.start()

    def run(self) -> None:
        run, args = self.run_args
        try:
            run(*args)
        except BaseException as error:  # handed to the caller's thread
            self.error = error


# -- videos -------------------------------------------------------------------------------


class _SegmentWorker:
    """A Ray actor: one Upscaler, many segments of one video."""

    def __init__(self, upscaler_options: dict, threads: int, encoding: Encoding, counter):
        self.up = _worker_upscaler(upscaler_options, threads)
        self.encoding, self.counter = encoding, counter

    def run(self, src: str, path: str, segment: Segment) -> SegmentResult:
        unreported = 0

        def on_frames(n: int) -> None:
            nonlocal unreported
            unreported += n
            if unreported >= _FRAMES_PER_REPORT:
                self.counter.add.remote(unreported)
                unreported = 0

        result = transcode_segment(Path(src), Path(path), self.up, segment, self.encoding,
                                   on_frames)  # fmt: skip
        self.counter.add.remote(unreported)
        return result




class _Pool:
    """Idle and busy workers; a worker that dies is replaced by a new one, at most
    WORKER_RESTARTS times per worker of the pool."""

    def __init__(self, ray, make_worker, size: int, src: Path, folder: Path, timeout):
        self.ray, self.make_worker, self.src, self.folder = ray, make_worker, src, folder
        self.idle = [make_worker() for _ in range(size)]
        self.replacements, self.timeout = WORKER_RESTARTS * size, timeout
        self.running: dict = {}  # object ref -> (segment, attempt, worker, started)

    def submit(self, segment: Segment, attempt: int) -> None:
        worker = self.idle.pop()
        path = segment_path(self.folder, segment.index)
        ref = worker.run.remote(str(self.src), str(path), segment)
        self.running[ref] = (segment, attempt, worker, time.monotonic())

    def finished(self):
        """(segment, attempt, result or error) for the tasks done since last asked."""
        if not self.running:
            return
        ready, _ = self.ray.wait(list(self.running), num_returns=len(self.running),
                                 timeout=_POLL_SECONDS)  # fmt: skip
        for ref in ready:
            segment, attempt, worker, _ = self.running.pop(ref)
            try:
                outcome = self.ray.get(ref, timeout=_CALL_TIMEOUT)
            except self.ray.exceptions.RayActorError as error:  # the worker died
                outcome, worker = error, self._replace(worker)
            except Exception as error:  # the segment's own failure, raised in the worker
                outcome = error
            if worker is not None:
                self.idle.append(worker)
            yield segment, attempt, outcome
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
        for ref, (segment, attempt, worker, started) in list(self.running.items()):
            if now - started > self.timeout:
                del self.running[ref]
                replacement = self._replace(worker)
                if replacement is not None:
                    self.idle.append(replacement)
                yield segment, attempt, TimeoutError(f"no result after {self.timeout:g} s")

    def close(self) -> None:
        for worker in [*self.idle, *(w for _, _, w, _ in self.running.values())]:
            self.ray.kill(worker)


def _ray_work(ray, pool: _Pool, counter):
    def work(todo: list[Segment], record, on_frames) -> dict:
        queue = [(segment, 0) for segment in todo]
        failures: dict[int, str] = {}
        while queue or pool.running:
            while queue and pool.idle:
                pool.submit(*queue.pop(0))
            if not pool.idle and not pool.running:
                raise RuntimeError("every Ray worker died too often; see the Ray logs")
            for segment, attempt, outcome in pool.finished():
                if isinstance(outcome, SegmentResult):
                    record(segment, outcome)
                elif attempt < RETRIES:
                    queue.append((segment, attempt + 1))
                else:
                    failures[segment.index] = _failure(outcome)
            on_frames(ray.get(counter.take.remote(), timeout=_CALL_TIMEOUT))
        return failures

    return work


def _failure(error: BaseException) -> str:
    if isinstance(error, _ray().exceptions.RayActorError):
        return f"its Ray worker died ({RETRIES + 1} times; see the Ray logs)"
    cause = getattr(error, "cause", None)  # a RayTaskError carries the worker's exception
    return _one_line(cause if isinstance(cause, BaseException) else error)


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
    with ray_session(address) as ray:
        counter = ray.remote(num_cpus=0)(_Counter).remote()
        todo = sum(not manifest.finished(s) for s in manifest.segments)
        size = max(1, min(_pool_size(ray, workers, threads_per_worker), todo))
        worker_class = ray.remote(num_cpus=threads_per_worker)(_SegmentWorker)

        def make_worker():
            return worker_class.remote(upscaler_options, threads_per_worker, encoding, counter)

        pool = _Pool(ray, make_worker, size, src, manifest.folder, segment_timeout)
        try:
            return run_job(manifest, src, dst, _ray_work(ray, pool, counter), progress)
        finally:  # also when the session stays open after the job (the caller's)
            pool.close()
            ray.kill(counter)

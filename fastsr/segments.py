"""Video jobs in segments, so that a job can resume and spread over many workers.

The input is split at keyframes (`plan_segments`); each segment is decoded from its
keyframe, upscaled and encoded with the job's encoder into its own file
(`transcode_segment`); the segment files are then joined by stream copy, with the
input's audio and subtitle packets copied in between (`join_segments`). Segments are
files of the output's own container, so timestamps are rounded (or not) just as a
direct write rounds them, and decode timestamps are kept where the container has them.

A job's work folder sits next to the output (`.OUT.fastsr-job/`): a manifest of the
input, the settings, the segments and the ones finished, and the finished segment
files. A segment file is complete before the manifest names it, so after an interrupt,
a crash or a lost worker, `resume=True` redoes only the segments the manifest lacks;
segment encodes are deterministic, so the joined file is the one an uninterrupted run
writes. The folder is removed once the output is in place.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from fastsr.video import (
    DEFAULT_CODEC,
    VideoResult,
    _av,
    _encoder_codec,
    _one_line,
    _Transcoder,
    add_copied_streams,
    check_container_takes,
    check_output_path,
    check_video_stream,
    temporary_path,
)

if TYPE_CHECKING:
    from fastsr.api import Upscaler

SEGMENT_SECONDS = 10.0  # what an interrupt can cost; each segment also starts a new GOP
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Encoding:
    """The encoder settings every segment is written with."""

    codec: str = DEFAULT_CODEC
    crf: int | None = None
    pix_fmt: str | None = None
    strict: bool = False  # stop at an undecodable packet instead of skipping it


@dataclass(frozen=True)
class Segment:
    index: int
    start: int | None  # pts of its first keyframe; None: from the start of the file
    end: int | None  # the next segment's start; None: to the end
    frames: int  # its video packets: its share of the progress bar


@dataclass(frozen=True)
class SegmentResult:
    frames: int
    skipped: int  # undecodable packets left out
    bytes: int
    first_pts: int | None = None  # of its first frame, in the input's time base


class JobIncomplete(RuntimeError):
    """A segmented job stopped before every segment was done; the done ones are kept
    in the work folder and `resume=True` (--resume) continues from them."""

    def __init__(self, dst: Path, done: int, total: int, failures: dict, interrupted: bool):
        self.dst, self.done, self.total, self.failures = dst, done, total, failures
        self.interrupted = interrupted
        if interrupted:
            what = "interrupted"
        else:
            first = min(failures)
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            what = f"failed: segment {first}: {failures[first]}{more}"
        super().__init__(
            f"video upscaling {what}; {done} of {total} segments done and kept, no {dst} "
            "written yet: rerun with --resume (resume=True) to do the rest"
        )


# -- planning -----------------------------------------------------------------------------


def plan_segments(src: Path, seconds: float = SEGMENT_SECONDS) -> list[Segment]:
    """Segments of about `seconds` each, every one starting at a keyframe (only the
    packets are read, nothing is decoded)."""
    if not seconds > 0:
        raise ValueError(f"segment length must be a positive number of seconds, got {seconds}")
    av = _av()
    try:
        source = av.open(str(src))
    except av.FFmpegError as error:
        raise ValueError(f"{src} is not a readable video: {_one_line(error)}") from None
    with source:
        check_video_stream(src, source)
        video = source.streams.video[0]
        step = Fraction(seconds) / video.time_base
        stamps, starts = [], []
        for packet in source.demux(video):
            if packet.pts is None:
                continue
            stamps.append(packet.pts)
            if packet.is_keyframe and packet.pts - (starts or stamps[:1])[-1] >= step:
                starts.append(packet.pts)
    stamps.sort()
    bounds = [None, *starts, None]
    segments = []
    for index in range(len(bounds) - 1):
        start, end = bounds[index], bounds[index + 1]
        low = 0 if start is None else bisect.bisect_left(stamps, start)
        high = len(stamps) if end is None else bisect.bisect_left(stamps, end)
        segments.append(Segment(index, start, end, high - low))
    return segments


# -- one segment --------------------------------------------------------------------------


class _SegmentTranscoder(_Transcoder):
    """The local transcoder on a window of frames, video only, counting frames out."""

    def __init__(self, *args, on_frames: Callable[[int], None], **kwargs):
        super().__init__(*args, **kwargs)
        self.on_frames, self.first_pts = on_frames, None

    def _progress_bar(self, enabled: bool):
        return _Counter(self.on_frames)

    def _frame(self, upscaled, pts):
        if self.first_pts is None:
            self.first_pts = pts
        return super()._frame(upscaled, pts)


class _Counter:
    def __init__(self, on_frames: Callable[[int], None]):
        self.update, self.close = on_frames, lambda: None


def transcode_segment(
    src: Path,
    path: Path,
    up: Upscaler,
    segment: Segment,
    encoding: Encoding,
    on_frames: Callable[[int], None] = lambda n: None,
) -> SegmentResult:
    """Decode `segment` of `src`, upscale it, encode it into `path` (written whole or
    not at all). Raises what stopped it."""
    av = _av()
    codec = _encoder_codec(av, encoding.codec)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    window = (segment.start, segment.end)
    try:
        with av.open(str(src)) as source:
            transcoder = _SegmentTranscoder(
                av, source, tmp, up, codec, encoding.crf, encoding.pix_fmt, encoding.strict,
                window=window, copy_streams=False, on_frames=on_frames,
            )  # fmt: skip
            failure = transcoder.run(progress=False)
        if failure is not None:
            raise failure
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    size = path.stat().st_size
    return SegmentResult(transcoder.frames_written, transcoder.skipped, size, transcoder.first_pts)


# -- joining ------------------------------------------------------------------------------


def join_segments(src: Path, parts: list[tuple[Path, int]], dst: Path) -> None:
    """Write `dst`: the video packets of `parts` (segment file, its first frame's pts in
    the input's time base) in turn, the input's audio and subtitle packets copied, all
    interleaved by time."""
    av = _av()
    with av.open(str(src)) as source, av.open(str(parts[0][0])) as first:
        # bitexact: no random stream ids or version strings, so a resumed job's file is
        # byte for byte an uninterrupted one's
        output = av.open(str(dst), "w", options={"fflags": "+bitexact"})
        try:
            template = first.streams.video[0]
            check_container_takes(av, output, template.codec_context.codec)
            video_out = output.add_stream_from_template(template)
            video_in = source.streams.video[0]
            video_out.time_base = video_in.time_base
            copied = add_copied_streams(source, output)
            streams = [source.streams[i] for i in copied]
            copied_packets = _timed(source.demux(streams) if streams else [], 1)  # []: all
            video_packets = _timed(_video_packets(parts, video_in.time_base), 0)
            for *_, packet in heapq.merge(video_packets, copied_packets):
                packet.stream = copied.get(packet.stream.index, video_out)
                output.mux(packet)
        finally:
            output.close()


def _video_packets(parts: list[tuple[Path, int]], time_base) -> Iterator:
    """The segments' video packets with timestamps made whole again.

    Presentation: each segment is moved so its first frame is at the pts it had in the
    input (an MP4 segment's start is an edit list in milliseconds). Decode: containers
    such as Matroska store none, so each packet gets the presentation time of its place
    in decode order, less the deepest frame reordering of the job: increasing across
    segments, never after the frame's own presentation.
    """
    av = _av()
    plans = []
    for path, first_pts in parts:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stamps = [p.pts for p in container.demux(stream) if p.size and p.pts is not None]
            tick = stream.time_base
        in_order = sorted(stamps)
        shift = round((first_pts * time_base - in_order[0] * tick) / tick)
        reorder = max(a - b for a, b in zip(in_order, stamps, strict=True))
        plans.append((path, shift, in_order, reorder))
    delay = max(plan[3] for plan in plans)
    for path, shift, in_order, _ in plans:
        with av.open(str(path)) as container:
            packets = (p for p in container.demux(video=0) if p.size and p.pts is not None)
            for packet, decode_time in zip(packets, in_order, strict=True):
                packet.pts += shift
                packet.dts = decode_time + shift - delay
                yield packet


def _timed(packets, rank: int) -> Iterator:
    """(time, rank, order, packet) for the packets that carry data: merge keys."""
    for order, packet in enumerate(packets):
        if packet.dts is not None and packet.size:
            yield packet.dts * packet.time_base, rank, order, packet


# -- the job and its manifest -------------------------------------------------------------


def job_folder(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.fastsr-job")


def segment_path(folder: Path, index: int) -> Path:
    """Segment `index` of the job in `folder` (named for the output it makes)."""
    return folder / f"segment-{index:05d}{Path(folder.name.removesuffix('.fastsr-job')).suffix}"


def upscaler_identity(up: Upscaler) -> dict:
    """What decides an upscaler's output, for the manifest: a resumed job must not mix
    segments of two models or precisions."""
    digest = hashlib.sha256(repr(up.graph.nodes).encode())
    for name in sorted(up.graph.params):
        digest.update(name.encode())
        digest.update(up.graph.params[name].tobytes())
    return {"model": digest.hexdigest()[:16], "scale": up.scale, "precision": up.precision,
            "tile": up.tile, "max_memory": up.max_memory}  # fmt: skip


def job_identity(src: Path, up: Upscaler, encoding: Encoding) -> dict:
    stat = src.stat()
    return {
        "input": {"path": str(src.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns},
        "upscaler": upscaler_identity(up),
        "encoding": asdict(encoding),
    }


class Manifest:
    """The manifest file: written whole (temporary name, then renamed) at every change."""

    def __init__(self, folder: Path, identity: dict, segments: list[Segment], done: dict):
        self.folder, self.identity, self.segments, self.done = folder, identity, segments, done

    @property
    def path(self) -> Path:
        return self.folder / "manifest.json"

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        path = folder / "manifest.json"
        try:
            data = json.loads(path.read_text())
            if data["version"] != MANIFEST_VERSION:
                raise ValueError(f"version {data['version']}")
            segments = [Segment(**s) for s in data["segments"]]
            done = {int(i): SegmentResult(**r) for i, r in data["done"].items()}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"the job manifest {path} is unreadable ({_one_line(error)}); "
                "pass --overwrite (overwrite=True) to start the job over"
            ) from None
        return cls(folder, data["identity"], segments, done)

    def save(self) -> None:
        data = {
            "version": MANIFEST_VERSION,
            "identity": self.identity,
            "segments": [asdict(s) for s in self.segments],
            "done": {str(i): asdict(r) for i, r in sorted(self.done.items())},
        }
        tmp = self.path.with_name(".manifest.json.partial")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)

    def finished(self, segment: Segment) -> bool:
        """Recorded, and its file is there and whole."""
        result = self.done.get(segment.index)
        path = segment_path(self.folder, segment.index)
        return result is not None and path.is_file() and path.stat().st_size == result.bytes

    def record(self, segment: Segment, result: SegmentResult) -> None:
        self.done[segment.index] = result
        self.save()


def open_job(
    src: Path, dst: Path, identity: dict, seconds: float, resume: bool, overwrite: bool
) -> Manifest:
    """The job's manifest: the one on disk when resuming it, else a new one."""
    check_output_path(dst, overwrite)
    folder = job_folder(dst)
    if folder.exists() and not resume:
        if not overwrite:
            raise FileExistsError(
                f"an unfinished job for {dst} is kept in {folder}; pass --resume "
                "(resume=True) to continue it or --overwrite (overwrite=True) to start over"
            )
        shutil.rmtree(folder)
    if (folder / "manifest.json").exists():
        manifest = Manifest.load(folder)
        changed = [key for key in identity if manifest.identity.get(key) != identity[key]]
        if changed:
            raise ValueError(
                f"the unfinished job in {folder} was started with another {' and '.join(changed)}"
                "; rerun with the same ones, or pass --overwrite (overwrite=True) to start over"
            )
        return manifest
    segments = plan_segments(src, seconds)
    folder.mkdir(exist_ok=True)
    manifest = Manifest(folder, identity, segments, {})
    manifest.save()
    return manifest


# A `Work` function upscales the segments it is given, calling record(segment, result)
# for each one done and on_frames(n) as frames are done; it returns {index: reason} for
# the segments that failed for good, or raises to stop the job (Ctrl-C).
Work = Callable[[list[Segment], Callable[[Segment, SegmentResult], None], Callable], dict]


def run_job(manifest: Manifest, src: Path, dst: Path, work: Work, progress: bool) -> VideoResult:
    """Do the unfinished segments with `work`, then join them all into `dst`."""
    from tqdm import tqdm

    todo = [s for s in manifest.segments if not manifest.finished(s)]
    total = sum(s.frames for s in manifest.segments)
    initial = total - sum(s.frames for s in todo)
    bar = tqdm(total=total, initial=initial, unit="frame", desc="upscaling",
               disable=not progress, delay=1)  # fmt: skip
    try:
        failures = work(todo, manifest.record, bar.update)
    except BaseException as error:
        done = sum(manifest.finished(s) for s in manifest.segments)
        interrupted = isinstance(error, KeyboardInterrupt)
        stopped = next((s.index for s in todo if not manifest.finished(s)), 0)
        failures = {} if interrupted else {stopped: _one_line(error)}
        raise JobIncomplete(dst, done, len(manifest.segments), failures, interrupted) from error
    finally:
        bar.close()
    if failures:
        done = sum(manifest.finished(s) for s in manifest.segments)
        raise JobIncomplete(dst, done, len(manifest.segments), failures, False)
    frames = sum(manifest.done[s.index].frames for s in manifest.segments)
    skipped = sum(manifest.done[s.index].skipped for s in manifest.segments)
    if frames == 0:
        shutil.rmtree(manifest.folder)
        rejected = f" ({skipped} packets rejected by the decoder)" if skipped else ""
        raise ValueError(f"{src} has no decodable video frame{rejected}")
    parts = [(segment_path(manifest.folder, s.index), manifest.done[s.index].first_pts)
             for s in manifest.segments if manifest.done[s.index].frames]  # fmt: skip
    tmp = temporary_path(dst)
    try:
        join_segments(src, parts, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    shutil.rmtree(manifest.folder)
    return VideoResult(dst, frames, skipped)


def local_work(src: Path, up: Upscaler, encoding: Encoding, folder: Path) -> Work:
    """Segments one after another in this process; the first failure stops the job."""

    def work(todo, record, on_frames) -> dict:
        for segment in todo:
            path = segment_path(folder, segment.index)
            record(segment, transcode_segment(src, path, up, segment, encoding, on_frames))
        return {}

    return work


def upscale_video_resumable(
    src,
    dst,
    upscaler: Upscaler | None = None,
    *,
    codec: str = DEFAULT_CODEC,
    crf: int | None = None,
    pix_fmt: str | None = None,
    strict: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    segment_seconds: float = SEGMENT_SECONDS,
    progress: bool = True,
    **upscaler_options,
) -> VideoResult:
    """`fastsr.video.upscale_video` as a resumable job of segments (see the module).

    resume: continue the unfinished job for `dst` (a new one starts if there is none).
    Raises JobIncomplete when it stops early: nothing is written at `dst` then, and the
    finished segments wait in the work folder for `resume=True`.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"no video file at {src}")
    encoding = Encoding(codec, crf, pix_fmt, strict)
    _encoder_codec(_av(), codec)  # an unknown encoder fails before any work
    if upscaler is None:
        from fastsr.api import Upscaler

        upscaler = Upscaler(**upscaler_options)
    identity = job_identity(src, upscaler, encoding)
    manifest = open_job(src, dst, identity, segment_seconds, resume, overwrite)
    work = local_work(src, upscaler, encoding, manifest.folder)
    return run_job(manifest, src, dst, work, progress)

"""Upscale a video file: decode -> upscale -> encode, other streams copied as they are.

Three stages overlap: a decode thread demuxes and hands frames on, the calling thread
runs the model, an encode thread encodes and muxes. On the cpu backend a frame goes as
its YUV planes, read and written by the C++ image stage (fastsr/yuv.py); otherwise it is
turned into an RGB array and back by swscale. Bounded queues keep memory flat. Audio and
subtitle packets travel through the same queues as the frames, so they reach the muxer
in their original order and are never re-encoded.

The output is written under a temporary name and renamed at the end. A run that stops
early (Ctrl-C, a frame that fails) still finalises the container, so the frames done
are playable; the file is then renamed to the output name and `PartialOutputError`
says so, or, with `all_or_nothing`, removed. A packet the decoder rejects is skipped and
counted (`strict` stops instead); a video without one decodable frame leaves no file.

Colour: the input's matrix, range, primaries and transfer are the output's too, and the
YUV<->RGB conversions use that matrix and range (an untagged input gets the matrix
players assume for its height, and the output is tagged with it, since the upscaled
video would otherwise be guessed differently).
"""

from __future__ import annotations

import os
import queue
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fastsr.yuv import DecodedPlanes, chroma_location, planar_video

if TYPE_CHECKING:  # imported when used: the CLI imports this module for its error types
    from fastsr.api import Upscaler

DEFAULT_CODEC = "libx264"
DEFAULT_CRF = 18  # visually near-lossless for x264/x265; upscaled detail is worth keeping
QUEUE_FRAMES = 4  # frames in flight per stage: enough to overlap, little memory
COPIED_STREAM_TYPES = ("audio", "subtitle")
_END = ("end", None)
# The steps a frame goes through, by thread: decode thread, calling thread, encode thread.
STAGE_STEPS = ("decode", "to RGB", "model", "to YUV", "encode and mux")
_POLL_SECONDS = 0.1  # how often a blocked stage checks whether the others have stopped
# Encoders a container/codec mismatch error suggests, in order, when they are built in.
SUGGESTED_CODECS = ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1", "mpeg4")
# FFmpeg AVColorSpace tags -> the swscale matrix they mean (2, unspecified, is resolved
# first; 0 (RGB) and 8 (YCgCo) have no swscale matrix and fall back to BT.601).
_SWS_MATRIX = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "SMPTE170M", 7: "SMPTE240M", 9: "BT2020",
               10: "BT2020"}  # fmt: skip
_BT709, _SMPTE170M, _UNSPECIFIED = 1, 6, 2
_HD_LINES = 720  # players treat untagged video this tall or taller as BT.709
_MPEG_RANGE, _JPEG_RANGE = 1, 2


class PartialOutputError(RuntimeError):
    """The run stopped early; the output (if kept) holds only the frames done."""

    def __init__(self, path: Path, frames: int, cause: BaseException, kept: bool):
        self.path, self.frames, self.cause, self.kept = path, frames, cause, kept
        self.interrupted = isinstance(cause, KeyboardInterrupt)
        what = "interrupted" if self.interrupted else f"failed: {_one_line(cause)}"
        if kept:
            outcome = f"{path} is PARTIAL: it holds the first {frames} frames only"
        else:
            outcome = f"no output written (all-or-nothing), {frames} frames were done"
        super().__init__(f"video upscaling {what}; {outcome}")


@dataclass
class VideoResult:
    path: Path
    frames: int
    skipped: int = 0  # undecodable packets left out
    seconds: float = 0.0  # wall time of the transcode
    # seconds each step was busy (STAGE_STEPS); the steps overlap, so they may sum to more
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        skipped = f", {self.skipped} undecodable packets skipped" if self.skipped else ""
        return f"{self.path}: {self.frames} frames{skipped}"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _av():
    try:
        import av
    except ImportError:
        raise RuntimeError("video needs PyAV: pip install av (or fastsr[video])") from None
    return av


def check_output_path(path: Path, overwrite: bool) -> None:
    """Fail before any work if `path` cannot or must not be written."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, expected a file name")
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"output directory {parent} is not writable")


def temporary_path(path: Path) -> Path:
    """A sibling name with the same suffix (the suffix picks the container/format)."""
    return path.with_name(f".{path.stem}.fastsr-partial{path.suffix}")


def upscale_video(
    src,
    dst,
    upscaler: Upscaler | None = None,
    *,
    codec: str = DEFAULT_CODEC,
    crf: int | None = None,
    pix_fmt: str | None = None,
    all_or_nothing: bool = False,
    strict: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    planes: bool = True,
    **upscaler_options,
) -> VideoResult:
    """Upscale the first video stream of `src` into `dst`, copying audio and subtitles.

    upscaler: an `Upscaler` to use; otherwise one is made from `upscaler_options`
        (model, scale, backend, threads, tile, max_memory).
    codec, crf, pix_fmt: the encoder, its constant-rate factor (codecs that have one;
        default 18) and pixel format (default: the input's when the encoder takes it).
    strict: stop at the first packet the decoder rejects instead of skipping it.
    planes: hand frames to the backend as YUV planes where it takes them; False sends
        them through RGB and swscale (the path for every other case), to compare the two.
    Frame rate, timestamps and the colour description are kept. Raises
    PartialOutputError when the run stops early (the exception says whether a partial
    file was kept).
    """
    av = _av()
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"no video file at {src}")
    check_output_path(dst, overwrite)
    encoder = _encoder_codec(av, codec)
    if upscaler is None:
        from fastsr.api import Upscaler

        upscaler = Upscaler(**upscaler_options)
    try:
        source = av.open(str(src))
    except av.FFmpegError as error:
        raise ValueError(f"{src} is not a readable video: {_one_line(error)}") from None
    with source:
        check_video_stream(src, source)
        tmp = temporary_path(dst)
        try:
            transcoder = _Transcoder(
                av, source, tmp, upscaler, encoder, crf, pix_fmt, strict, planes=planes
            )
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        start = time.perf_counter()
        failure = transcoder.run(progress)
        seconds = time.perf_counter() - start
    done, skipped = transcoder.frames_written, transcoder.skipped
    if failure is None and done == 0:
        rejected = f" ({skipped} packets rejected by the decoder)" if skipped else ""
        failure = ValueError(f"{src} has no decodable video frame{rejected}")
    if failure is None:
        os.replace(tmp, dst)
        return VideoResult(dst, done, skipped, seconds, dict(transcoder.busy))
    if all_or_nothing or done == 0:
        tmp.unlink(missing_ok=True)
        if done == 0:  # nothing was done: the plain error says it all
            raise failure
    else:
        os.replace(tmp, dst)
    raise PartialOutputError(dst, done, failure, not all_or_nothing) from failure


def check_video_stream(src: Path, source) -> None:
    """The first video stream must exist and say what its frames are."""
    if not source.streams.video:
        raise ValueError(f"{src} has no video stream")
    if source.streams.video[0].format is None:  # no frame could be probed
        raise ValueError(f"{src} has no decodable video frame (is the file cut short or damaged?)")


def _encoder_codec(av, name: str):
    try:
        codec = av.codec.Codec(name, "w")
    except Exception:  # PyAV raises different types for unknown and decoder-only names
        codec = None
    if codec is None or codec.type != "video":
        raise ValueError(f"unknown video encoder {name!r}; try libx264, libx265 or libvpx-vp9")
    return codec


def check_container_takes(av, output, codec) -> None:
    """A container that cannot hold `codec` is named with encoders it does hold."""
    if codec.canonical_name in output.supported_codecs:
        return
    available = av.codecs_available
    fits = [
        name
        for name in SUGGESTED_CODECS
        if name in available and av.codec.Codec(name, "w").canonical_name in output.supported_codecs
    ]
    hint = f"use --codec {' or '.join(fits[:2])}" if fits else "choose another output suffix"
    raise ValueError(
        f"a {output.format.name} file cannot hold {codec.name} video; {hint} "
        "(or an output suffix such as .mkv)"
    )


def colour_description(ctx) -> dict:
    """The output's colour tags: the input's, with an unspecified matrix/range resolved."""
    matrix = ctx.colorspace
    if matrix == _UNSPECIFIED:
        matrix = _BT709 if ctx.height >= _HD_LINES else _SMPTE170M
    full = ctx.color_range == _JPEG_RANGE or ctx.pix_fmt.startswith("yuvj")
    return {
        "colorspace": matrix,
        "color_range": _JPEG_RANGE if full else _MPEG_RANGE,
        "color_primaries": ctx.color_primaries,
        "color_trc": ctx.color_trc,
    }


def _choose_pix_fmt(codec, requested: str | None, source_format: str) -> str:
    supported = [f.name for f in codec.video_formats or []]
    if requested is not None:
        if supported and requested not in supported:
            raise ValueError(
                f"encoder {codec.name} does not take pixel format {requested!r}; "
                f"it takes {', '.join(supported)}"
            )
        return requested
    for candidate in (source_format, "yuv420p", *supported):
        if not supported or candidate in supported:
            return candidate
    raise AssertionError("unreachable: the last candidate is supported")


def _check_subsampling(av, pix_fmt: str, width: int, height: int) -> None:
    """Chroma-subsampled formats (4:2:0, 4:2:2) need sizes the subsampling divides."""
    planes = av.VideoFormat(pix_fmt, 4, 4).components
    step_w, step_h = 4 // min(p.width for p in planes), 4 // min(p.height for p in planes)
    if width % step_w or height % step_h:
        raise ValueError(
            f"pixel format {pix_fmt} needs a width divisible by {step_w} and a height by "
            f"{step_h}; the upscaled video is {width}x{height} (try --pix-fmt yuv444p)"
        )


def _exact_rounding(av, deep: bool):
    """swscale flags that make YUV -> RGB -> YUV give back the same YUV values (the
    default fast path is off by 1-3 levels, and chroma is interpolated coarsely). Not
    FULL_CHR_H_INT for 10/12-bit sources: its rgb48 output is wrong (the luma of a
    mid-grey clip fell by 190 of 1023 levels), so their chroma is interpolated coarsely."""
    flags = av.video.reformatter.Interpolation
    exact = flags.BILINEAR | flags.ACCURATE_RND
    return exact if deep else exact | flags.FULL_CHR_H_INT


def add_copied_streams(source, output) -> dict:
    """Input stream index -> output stream, for the streams copied packet by packet."""
    copied = {}
    for stream in source.streams:
        if stream.type not in COPIED_STREAM_TYPES:
            continue
        if stream.codec.canonical_name not in output.supported_codecs:
            warnings.warn(
                f"fastsr: {stream.type} stream #{stream.index} ({stream.codec.name}) cannot "
                f"go into a {output.format.name} file and is left out; choose an "
                "output container that takes it (e.g. .mkv)",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        copied[stream.index] = output.add_stream_from_template(stream)
    return copied


class _Transcoder:
    """The open output container and the three stages feeding it."""

    def __init__(self, av, source, path: Path, up: Upscaler, codec, crf, pix_fmt, strict,
                 window=(None, None), copy_streams: bool = True, planes: bool = True):  # fmt: skip
        self.av, self.source, self.up, self.strict = av, source, up, strict
        self.window = window  # the frames with start <= pts < end (None: no bound)
        self.video_in = source.streams.video[0]
        ctx = self.video_in.codec_context
        deep = max(c.bits for c in self.video_in.format.components) > 8
        self.rgb_format = "rgb48le" if deep else "rgb24"  # 10/12-bit sources keep their bits
        self.colour = colour_description(ctx)
        matrix = _SWS_MATRIX.get(self.colour["colorspace"], "ITU601")
        rounding = _exact_rounding(av, deep)
        self._to_rgb = {"src_colorspace": matrix, "src_color_range": self.colour["color_range"],
                        "interpolation": rounding}  # fmt: skip
        self._to_yuv = {"dst_colorspace": matrix, "dst_color_range": self.colour["color_range"],
                        "interpolation": rounding}  # fmt: skip
        self.output = av.open(str(path), "w")
        try:
            check_container_takes(av, self.output, codec)
            self.video_out = self._add_video_stream(codec, crf, pix_fmt)
            size = (ctx.width, ctx.height)
            location = chroma_location(ctx)
            self.planar = (
                planar_video(av, up, ctx.pix_fmt, self.video_out.pix_fmt, size, self.colour,
                             location) if planes else None
            )  # fmt: skip
            self.copied = add_copied_streams(source, self.output) if copy_streams else {}
            self._start_encoding(codec)
        except BaseException:
            self.output.close()
            raise
        self.frames_written = self.skipped = 0
        self.busy = dict.fromkeys(STAGE_STEPS, 0.0)
        self.stop = threading.Event()
        self.decoded: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self.upscaled: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self.stage_error: BaseException | None = None

    def _start_encoding(self, codec) -> None:
        """Open the encoder now, in the calling thread: an encoder that cannot run here
        (a GPU encoder without its GPU) fails before any work, with one plain error."""
        try:
            self.output.start_encoding()
        except self.av.FFmpegError as error:
            raise RuntimeError(
                f"encoder {codec.name} cannot start on this machine ({_one_line(error)}); "
                f"hardware encoders need their GPU and driver, try --codec {DEFAULT_CODEC}"
            ) from None

    def _add_video_stream(self, codec, crf, pix_fmt):
        video_in = self.video_in
        rate = video_in.average_rate or video_in.guessed_rate or video_in.base_rate
        out = self.output.add_stream(codec.name, rate=Fraction(rate) if rate else None)
        out.width = video_in.codec_context.width * self.up.scale
        out.height = video_in.codec_context.height * self.up.scale
        out.pix_fmt = _choose_pix_fmt(codec, pix_fmt, video_in.codec_context.pix_fmt)
        _check_subsampling(self.av, out.pix_fmt, out.width, out.height)
        # keep the source's clock, so every frame keeps its exact timestamp
        out.codec_context.time_base = video_in.time_base
        out.time_base = video_in.time_base
        for key, value in self.colour.items():
            setattr(out.codec_context, key, value)
        if hasattr(out.codec_context, "chroma_sample_location"):  # PyAV 18 has none
            out.codec_context.chroma_sample_location = chroma_location(video_in.codec_context)
        options = {option.name for option in out.codec_context.supported_options.private}
        if "crf" in options:
            out.options = {"crf": str(DEFAULT_CRF if crf is None else crf)}
        elif crf is not None:
            raise ValueError(f"encoder {codec.name} has no crf option; leave crf unset")
        return out

    # -- stages ---------------------------------------------------------------------------
    @contextmanager
    def _timed(self, step: str):
        start = time.perf_counter()
        try:
            yield
        finally:  # one thread per step, so no two threads add to the same entry
            self.busy[step] += time.perf_counter() - start

    def _put(self, target: queue.Queue, item) -> bool:
        """Put unless the run has stopped; False when it has."""
        while not self.stop.is_set():
            try:
                target.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, source: queue.Queue):
        while True:
            try:
                return source.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if self.stop.is_set():
                    return _END

    def _decode(self) -> None:
        try:
            start, end = self.window
            if start is not None:  # the keyframe at or before start: decoding begins there
                self.source.seek(start, stream=self.video_in, backward=True, any_frame=False)
            streams = [self.video_in, *(self.source.streams[i] for i in self.copied)]
            for packet in self.source.demux(streams):
                if packet.stream.index in self.copied:
                    if packet.dts is not None and not self._put(self.decoded, ("packet", packet)):
                        return
                    continue
                with self._timed("decode"):
                    frames = self._decoded_frames(packet)
                for frame in frames:
                    if frame.pts is not None and end is not None and frame.pts >= end:
                        self._put(self.decoded, _END)  # frames come in time order: done
                        return
                    if frame.pts is not None and start is not None and frame.pts < start:
                        continue  # a frame of the segment before (open GOP)
                    with self._timed("to RGB"):
                        pixels = self._pixels(frame)
                    if not self._put(self.decoded, ("frame", (pixels, frame.pts))):
                        return
            self._put(self.decoded, _END)
        except BaseException as error:  # handed to the calling thread, which decides
            self._put(self.decoded, ("error", error))

    def _pixels(self, frame):
        """What the model step takes: the frame's planes, or RGB where they cannot go."""
        if self.planar is not None and self.planar.takes(frame):
            return self.planar.planes(frame)
        return frame.to_ndarray(format=self.rgb_format, **self._to_rgb)

    def _decoded_frames(self, packet) -> list:
        """The packet's frames; none when the decoder rejects it (counted, or raised)."""
        try:
            return packet.decode()
        except self.av.error.InvalidDataError as error:
            if self.strict:
                when = float(packet.pts * packet.time_base) if packet.pts is not None else 0
                raise ValueError(
                    f"undecodable video packet at {when:.3f} s ({_one_line(error)}); "
                    "without strict (--strict) such packets are skipped and counted"
                ) from None
            self.skipped += 1
            return []

    def _encode(self) -> None:
        try:
            while True:
                kind, item = self._get(self.upscaled)
                if kind == "end":
                    break
                if kind == "packet":
                    item.stream = self.copied[item.stream.index]
                    self.output.mux(item)
                    continue
                with self._timed("to YUV"):
                    frame = self._frame(*item)
                with self._timed("encode and mux"):
                    self.output.mux(self.video_out.encode(frame))
                self.frames_written += 1
            with self._timed("encode and mux"):
                self.output.mux(self.video_out.encode(None))  # flush: what was encoded plays
        except BaseException as error:
            self.stage_error = self.stage_error or error
            self.stop.set()
        finally:
            self._close()

    def _frame(self, upscaled, pts):
        """The encoder's frame: the planar path's as it is, RGB converted by swscale."""
        if isinstance(upscaled, np.ndarray):
            frame = self.av.VideoFrame.from_ndarray(upscaled, format=self.rgb_format)
            frame = frame.reformat(format=self.video_out.pix_fmt, **self._to_yuv)
        else:
            frame = upscaled
        frame.pts, frame.time_base = pts, self.video_in.time_base
        return frame

    def _close(self) -> None:
        """Close the container; a muxer failure here becomes the run's error, not a
        thread traceback."""
        try:
            self.output.close()
        except BaseException as error:
            self.stage_error = self.stage_error or error

    def run(self, progress: bool) -> BaseException | None:
        """Run the stages; the first failure (or Ctrl-C) stops them all and is returned."""
        decoder = threading.Thread(target=self._decode, name="fastsr-decode", daemon=True)
        encoder = threading.Thread(target=self._encode, name="fastsr-encode", daemon=True)
        failure = None
        bar = self._progress_bar(progress)
        decoder.start()
        encoder.start()
        try:
            while True:
                kind, item = self._get(self.decoded)
                if kind == "error":
                    raise item
                if kind == "frame":
                    pixels, pts = item
                    with self._timed("model"):
                        item = (self._upscale(pixels), pts)
                    bar.update(1)
                if not self._put(self.upscaled, (kind, item)) or kind == "end":
                    break
        except BaseException as error:
            failure = error
        finally:
            if failure is not None:
                self.stop.set()  # the encoder sees it, finalises and ends
            encoder.join()
            self.stop.set()
            decoder.join()
            bar.close()
        return failure or self.stage_error

    def _upscale(self, pixels):
        if isinstance(pixels, DecodedPlanes):
            return self.planar.upscale(pixels)
        return self.up(pixels)

    def _progress_bar(self, enabled: bool):
        from tqdm import tqdm

        video = self.video_in
        total = video.frames or None
        if total is None and video.duration and video.average_rate:
            total = int(video.duration * video.time_base * video.average_rate)
        return tqdm(total=total, unit="frame", desc="upscaling", disable=not enabled, delay=1)

"""Video files: frames upscaled, audio and subtitles copied, timestamps kept, no broken files."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from test_api import one_torch_thread, tiny_graph  # noqa: F401

import fastsr
from fastsr.video import PartialOutputError, temporary_path, upscale_video

av = pytest.importorskip("av", reason="video needs PyAV")

RATE = 12
SUBTITLE = b"upscaled, not re-encoded"


def frame_image(i: int, width: int, height: int) -> np.ndarray:
    """A frame with a moving vertical bar and flat colours, easy to compare after coding."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 180, 90, 40
    image[:, (3 * i) % width : (3 * i) % width + 4] = 250
    return image


def make_clip(
    path,
    frames: int = 8,
    width: int = 32,
    height: int = 24,
    pts=None,
    audio: bool = True,
    subtitles: bool = False,
    pix_fmt: str = "yuv420p",
):
    """A short H.264 clip, with an AAC track and an SRT track when asked."""
    pts = list(range(frames)) if pts is None else pts
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = Fraction(1, RATE)
        sound = out.add_stream("aac", rate=8000) if audio else None
        text = out.add_mux_stream("subrip", time_base=Fraction(1, 1000)) if subtitles else None
        for i, stamp in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="rgb24")
            frame.pts, frame.time_base = stamp, Fraction(1, RATE)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            seconds = (pts[-1] + 1) / RATE
            t = np.arange(int(8000 * seconds)) / 8000
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for start in range(0, samples.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, start : start + 1024]),
                    format="fltp",
                    layout="mono",
                )
                chunk.sample_rate, chunk.pts = 8000, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
        if text is not None:
            packet = av.Packet(SUBTITLE)
            packet.stream, packet.time_base = text, Fraction(1, 1000)
            packet.pts = packet.dts = 100
            packet.duration = 400
            out.mux(packet)
    return path


def probe(path):
    """Frame times (s), frame sizes, pixel format and the copied streams' packets."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = list(container.decode(video))
        info = {
            "times": [float(f.pts * f.time_base) for f in frames],
            "size": {(f.width, f.height) for f in frames},
            "pix_fmt": video.codec_context.pix_fmt,
            "rate": video.average_rate,
            "means": [f.to_ndarray(format="rgb24").reshape(-1, 3).mean(0) for f in frames],
        }
    for kind in ("audio", "subtitle"):
        with av.open(str(path)) as container:
            streams = [s for s in container.streams if s.type == kind]
            packets = container.demux(streams) if streams else []  # demux([]) means all
            info[kind] = [(bytes(p), float(p.pts * p.time_base)) for p in packets if p.size]
    return info


class FailingUpscaler:
    """Upscales until frame `fail_at` (1-based), then raises `error` there."""

    def __init__(self, up, fail_at: int, error: BaseException):
        self.up, self.scale, self.fail_at, self.error = up, up.scale, fail_at, error
        self.calls = 0

    def __call__(self, frame):
        self.calls += 1
        if self.calls == self.fail_at:
            raise self.error
        return self.up(frame)


@pytest.fixture(scope="module")
def up():
    return fastsr.Upscaler(model=tiny_graph(), backend="reference")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mkv", subtitles=True)


def test_video_is_upscaled_with_audio_and_subtitles_copied(tmp_path, up, clip):
    result = upscale_video(clip, tmp_path / "out.mkv", up, progress=False)
    source, output = probe(clip), probe(result.path)
    assert result.frames == 8
    assert output["size"] == {(64, 48)}
    assert output["times"] == pytest.approx(source["times"], abs=1e-3)
    assert output["rate"] == source["rate"] == RATE
    assert output["audio"] and output["audio"] == source["audio"]  # same bytes: copied
    assert output["subtitle"] == [(SUBTITLE, pytest.approx(0.1))]
    assert output["pix_fmt"] == "yuv420p"
    assert not temporary_path(result.path).exists()


def test_colours_survive_decode_upscale_encode(tmp_path, up, clip):
    output = probe(upscale_video(clip, tmp_path / "out.mkv", up, progress=False).path)
    for before, after in zip(probe(clip)["means"], output["means"], strict=True):
        assert np.abs(before - after).max() < 4  # a range or matrix mix-up costs > 10 levels


def test_variable_frame_timing_is_kept(tmp_path, up):
    stamps = [0, 1, 3, 4, 7, 8, 12]
    clip = make_clip(tmp_path / "vfr.mp4", frames=len(stamps), pts=stamps, audio=False)
    output = probe(upscale_video(clip, tmp_path / "out.mp4", up, progress=False).path)
    assert output["times"] == pytest.approx([s / RATE for s in stamps], abs=1e-3)


def test_subtitles_a_container_cannot_hold_are_left_out_with_a_warning(tmp_path, up, clip):
    with pytest.warns(RuntimeWarning, match="subtitle stream"):
        result = upscale_video(clip, tmp_path / "out.mp4", up, progress=False)
    output = probe(result.path)
    assert output["audio"] and not output["subtitle"] and len(output["times"]) == 8


def test_ten_bit_video_stays_ten_bit(tmp_path, up):
    clip = make_clip(tmp_path / "deep.mkv", frames=3, audio=False, pix_fmt="yuv420p10le")
    output = probe(upscale_video(clip, tmp_path / "out.mkv", up, progress=False).path)
    assert output["pix_fmt"] == "yuv420p10le" and output["size"] == {(64, 48)}


def test_codec_and_pixel_format_options(tmp_path, up, clip):
    result = upscale_video(
        clip, tmp_path / "out.mkv", up, codec="libx264", crf=30, pix_fmt="yuv444p", progress=False
    )
    assert probe(result.path)["pix_fmt"] == "yuv444p"
    with pytest.raises(ValueError, match="no crf option"):
        upscale_video(clip, tmp_path / "mpeg4.mkv", up, codec="mpeg4", crf=20, progress=False)
    with pytest.raises(ValueError, match="pixel format 'rgb48le'"):
        upscale_video(clip, tmp_path / "bad.mkv", up, pix_fmt="rgb48le", progress=False)
    assert not list(tmp_path.glob(".*partial*"))


def test_a_failing_frame_leaves_a_playable_partial_file(tmp_path, up, clip):
    failing = FailingUpscaler(up, 5, RuntimeError("frame 5 is corrupt"))
    with pytest.raises(PartialOutputError, match="PARTIAL.*first 4 frames") as caught:
        upscale_video(clip, tmp_path / "out.mkv", failing, progress=False)
    assert caught.value.kept and caught.value.frames == 4 and not caught.value.interrupted
    output = probe(tmp_path / "out.mkv")
    assert len(output["times"]) == 4 and output["size"] == {(64, 48)}
    assert output["times"] == pytest.approx(probe(clip)["times"][:4], abs=1e-3)


def test_all_or_nothing_leaves_no_file(tmp_path, up, clip):
    failing = FailingUpscaler(up, 3, RuntimeError("boom"))
    with pytest.raises(PartialOutputError, match="no output written") as caught:
        upscale_video(clip, tmp_path / "out.mkv", failing, all_or_nothing=True, progress=False)
    assert not caught.value.kept
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_finalises_what_was_done(tmp_path, up, clip):
    failing = FailingUpscaler(up, 4, KeyboardInterrupt())
    with pytest.raises(PartialOutputError, match="interrupted") as caught:
        upscale_video(clip, tmp_path / "out.mkv", failing, progress=False)
    assert caught.value.interrupted and caught.value.frames == 3
    assert len(probe(tmp_path / "out.mkv")["times"]) == 3


def test_bad_inputs_and_outputs(tmp_path, up, clip):
    with pytest.raises(FileNotFoundError, match="no video file"):
        upscale_video(tmp_path / "missing.mp4", tmp_path / "out.mp4", up)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="not a readable video"):
        upscale_video(corrupt, tmp_path / "out.mp4", up)
    existing = tmp_path / "exists.mkv"
    existing.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="--overwrite"):
        upscale_video(clip, existing, up)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(FileNotFoundError, match="output directory"):
        upscale_video(clip, tmp_path / "nowhere" / "out.mkv", up)
    with pytest.raises(ValueError, match="unknown video encoder 'h265-fast'"):
        upscale_video(clip, tmp_path / "out.mkv", up, codec="h265-fast")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.mp4", "exists.mkv"]


def test_a_failure_before_any_frame_is_the_plain_error(tmp_path, up, clip):
    failing = FailingUpscaler(up, 1, ValueError("the very first frame is bad"))
    with pytest.raises(ValueError, match="very first frame"):
        upscale_video(clip, tmp_path / "out.mkv", failing, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_subsampled_pixel_format_needs_even_sizes(tmp_path, clip):
    up3 = fastsr.Upscaler(model=tiny_graph(3, 3), backend="reference")
    odd = make_clip(tmp_path / "odd.mkv", frames=2, width=15, height=9, audio=False,
                    pix_fmt="yuv444p")  # fmt: skip
    with pytest.raises(ValueError, match="width divisible by 2"):
        upscale_video(odd, tmp_path / "out.mkv", up3, pix_fmt="yuv420p", progress=False)
    result = upscale_video(odd, tmp_path / "out.mkv", up3, progress=False)
    assert probe(result.path)["size"] == {(45, 27)}

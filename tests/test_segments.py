"""Segmented video jobs: keyframe split, join, manifest, resume after an interrupt."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from test_api import one_torch_thread, tiny_graph  # noqa: F401
from test_video import frame_image, probe

import fastsr
from fastsr.cli import main
from fastsr.segments import (
    JobIncomplete,
    job_folder,
    plan_segments,
    upscale_video_resumable,
)
from fastsr.video import upscale_video

av = pytest.importorskip("av", reason="video needs PyAV")

RATE = 12
SECONDS = 0.5  # under the keyframe interval: a segment per keyframe


def keyframed_clip(path, seconds=3, gop=RATE, width=32, height=24, audio=True, subtitles=False):
    """H.264 with B-frames, a keyframe every `gop` frames, and an AAC track (and an SRT
    track with a line every second, when asked)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=RATE, options={"g": str(gop), "bf": "2"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = Fraction(1, RATE)
        sound = out.add_stream("aac", rate=8000) if audio else None
        if subtitles:
            text = out.add_mux_stream("subrip", time_base=Fraction(1, 1000))
            for second in range(seconds):
                packet = av.Packet(f"line {second}".encode())
                packet.stream, packet.time_base = text, Fraction(1, 1000)
                packet.pts = packet.dts = 1000 * second + 100
                packet.duration = 400
                out.mux(packet)
        for i in range(seconds * RATE):
            frame = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, RATE)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is None:
            return path
        t = np.arange(8000 * seconds) / 8000
        samples = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[None]
        for start in range(0, samples.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, start : start + 1024]), format="fltp", layout="mono"
            )
            chunk.sample_rate, chunk.pts = 8000, start
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    return path


def decoded(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


class CountingUpscaler:
    """`up`, counting the frames it upscales; Ctrl-C at frame `stop_at` (1-based)."""

    def __init__(self, up, stop_at: int | None = None):
        self.up, self.stop_at, self.calls = up, stop_at, 0

    def __getattr__(self, name):  # scale, graph, precision...: the manifest's identity
        return getattr(self.up, name)

    def __call__(self, frame):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return self.up(frame)


@pytest.fixture(scope="module")
def up():
    return fastsr.Upscaler(model=tiny_graph(), backend="reference")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return keyframed_clip(tmp_path_factory.mktemp("clips") / "clip.mkv")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, up, clip):
    """The reference: the streaming local path, lossless, in one piece."""
    out = tmp_path_factory.mktemp("local") / "out.mkv"
    return upscale_video(clip, out, up, codec="ffv1", progress=False).path


def test_segments_start_at_keyframes_and_cover_every_frame(clip):
    segments = plan_segments(clip, SECONDS)
    with av.open(str(clip)) as container:
        packets = [p for p in container.demux(video=0) if p.pts is not None]
    keyframes = sorted(p.pts for p in packets if p.is_keyframe)
    assert [s.start for s in segments] == [None, *keyframes[1:]] and len(segments) >= 3
    assert [s.end for s in segments] == [*keyframes[1:], None]
    assert sum(s.frames for s in segments) == len(packets) == 3 * RATE


def test_segmented_job_equals_the_local_run(tmp_path, up, clip, local_run):
    result = upscale_video_resumable(
        clip, tmp_path / "out.mkv", up, codec="ffv1", segment_seconds=SECONDS, progress=False
    )
    assert result.frames == 3 * RATE
    expected, output = probe(local_run), probe(result.path)
    assert output["times"] == expected["times"]
    assert output["audio"] and output["audio"] == expected["audio"] == probe(clip)["audio"]
    frames, reference = decoded(result.path), decoded(local_run)
    assert len(frames) == len(reference) == 3 * RATE
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference, strict=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]  # work folder gone


def test_subtitles_are_copied_across_the_segments(tmp_path, up):
    clip = keyframed_clip(tmp_path / "subtitled.mkv", subtitles=True)
    assert len(plan_segments(clip, SECONDS)) >= 3
    local = upscale_video(clip, tmp_path / "local.mkv", up, codec="ffv1", progress=False)
    result = upscale_video_resumable(clip, tmp_path / "out.mkv", up, codec="ffv1",
                                     segment_seconds=SECONDS, progress=False)  # fmt: skip
    subtitles = probe(result.path)["subtitle"]
    assert subtitles == probe(local.path)["subtitle"] == probe(clip)["subtitle"]
    assert [text for text, _ in subtitles] == [b"line 0", b"line 1", b"line 2"]


def test_lossy_codec_in_mp4_keeps_timestamps_and_audio(tmp_path, up, clip):
    result = upscale_video_resumable(clip, tmp_path / "out.mp4", up, segment_seconds=SECONDS,
                                     progress=False)  # fmt: skip
    output, source = probe(result.path), probe(clip)
    assert output["times"] == pytest.approx(source["times"], abs=1e-9)
    assert output["audio"] == source["audio"] and output["size"] == {(64, 48)}


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_video_without_audio_or_subtitles(tmp_path, up, suffix):
    clip = keyframed_clip(tmp_path / f"silent{suffix}", audio=False)
    result = upscale_video_resumable(clip, tmp_path / f"out{suffix}", up, segment_seconds=SECONDS,
                                     progress=False)  # fmt: skip
    assert probe(result.path)["times"] == pytest.approx(probe(clip)["times"], abs=1e-9)
    assert len(decoded(result.path)) == 3 * RATE


def test_an_interrupted_job_resumes_redoing_only_unfinished_segments(tmp_path, up, clip):
    whole = upscale_video_resumable(
        clip, tmp_path / "whole.mkv", up, codec="ffv1", segment_seconds=SECONDS, progress=False
    ).path
    dst = tmp_path / "out.mkv"
    first = plan_segments(clip, SECONDS)[0].frames
    stopping = CountingUpscaler(up, stop_at=first + 5)  # in the second segment
    with pytest.raises(JobIncomplete, match="interrupted; 1 of [0-9]+ segments done") as caught:
        upscale_video_resumable(clip, dst, stopping, codec="ffv1", segment_seconds=SECONDS,
                                progress=False)  # fmt: skip
    assert caught.value.interrupted and not dst.exists()
    manifest = json.loads((job_folder(dst) / "manifest.json").read_text())
    assert list(manifest["done"]) == ["0"]
    with pytest.raises(FileExistsError, match="pass --resume"):
        upscale_video_resumable(clip, dst, up, codec="ffv1", progress=False)
    counting = CountingUpscaler(up)
    upscale_video_resumable(clip, dst, counting, codec="ffv1", resume=True, progress=False)
    assert counting.calls == 3 * RATE - first  # all segments but the first
    assert dst.read_bytes() == whole.read_bytes()
    assert not job_folder(dst).exists()


def test_resume_refuses_other_settings(tmp_path, up, clip):
    dst = tmp_path / "out.mkv"
    stopping = CountingUpscaler(up, stop_at=3)
    with pytest.raises(JobIncomplete):
        upscale_video_resumable(clip, dst, stopping, codec="ffv1", progress=False)
    with pytest.raises(ValueError, match="started with another encoding"):
        upscale_video_resumable(clip, dst, up, codec="libx264", resume=True, progress=False)
    result = upscale_video_resumable(clip, dst, up, codec="libx264", overwrite=True,
                                     progress=False)  # fmt: skip
    assert result.frames == 3 * RATE


def test_cli_resume(tmp_path, clip):
    dst = tmp_path / "out.mkv"
    argv = ["video", str(clip), str(dst), "--model", "fast_x2", "--codec", "ffv1", "--resume",
            "--segment-seconds", str(SECONDS)]  # fmt: skip
    assert main(argv) == 0
    assert len(decoded(dst)) == 3 * RATE and not job_folder(dst).exists()

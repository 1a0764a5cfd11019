"""Video files: frames upscaled, audio and subtitles copied, timestamps kept, no broken files."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_api import one_torch_thread, tiny_graph  # noqa: F401
from test_yuv import BicubicSR

import fastsr
from fastsr.cli import main
from fastsr.video import STAGE_STEPS, PartialOutputError, temporary_path, upscale_video
from fastsr.yuv import chroma_location, chroma_sites, planar_video, plane_arrays

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
    codec: str = "libx264",
):
    """A short clip (H.264 unless told), with an AAC track and an SRT track when asked."""
    pts = list(range(frames)) if pts is None else pts
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=RATE)
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


def test_the_result_says_how_long_each_step_was_busy(tmp_path, up, clip):
    result = upscale_video(clip, tmp_path / "out.mkv", up, progress=False)
    assert list(result.stage_seconds) == list(STAGE_STEPS)
    for step, busy in result.stage_seconds.items():
        assert 0 < busy <= result.seconds, step


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


# -- damaged input, encoders that cannot run, colour tags ---------------------------------


def damage_packet(src, dst, index: int):
    """`src` remuxed into `dst` with video packet `index` replaced by random bytes."""
    with av.open(str(src)) as source, av.open(str(dst), "w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        packets = [p for p in source.demux(source.streams.video[0]) if p.dts is not None]
        for i, packet in enumerate(packets):
            if i == index:
                noise = np.random.default_rng(i).integers(0, 256, packet.size, np.uint8)
                damaged = av.Packet(noise.tobytes())
                damaged.pts, damaged.dts = packet.pts, packet.dts
                damaged.time_base, damaged.is_keyframe = packet.time_base, True
                packet = damaged
            packet.stream = stream
            out.mux(packet)
    return dst


def test_an_undecodable_packet_is_skipped_and_counted(tmp_path, up):
    clean = make_clip(tmp_path / "clean.mkv", frames=8, audio=False, codec="ffv1")
    damaged = damage_packet(clean, tmp_path / "damaged.mkv", 4)
    result = upscale_video(damaged, tmp_path / "out.mkv", up, codec="ffv1", progress=False)
    assert (result.frames, result.skipped) == (7, 1)
    assert "7 frames, 1 undecodable packets skipped" in result.summary()
    kept = [t for i, t in enumerate(probe(clean)["times"]) if i != 4]
    assert probe(result.path)["times"] == pytest.approx(kept, abs=1e-3)
    with pytest.raises(PartialOutputError, match="undecodable video packet at 0.333 s"):
        upscale_video(damaged, tmp_path / "strict.mkv", up, strict=True, progress=False)
    assert len(probe(tmp_path / "strict.mkv")["times"]) == 4  # the frames before it


def video_without_frames(path):
    """A video stream whose size and pixel format are known, but no frame; audio only."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("rawvideo", rate=RATE)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        sound = out.add_stream("aac", rate=8000)
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
        silence.sample_rate, silence.pts = 8000, 0
        out.mux(sound.encode(silence))
        out.mux(sound.encode(None))
    return path


def cut_after_header(clip, path):
    """A Matroska file cut right before its first video packet."""
    with av.open(str(clip)) as source:
        first = next(p for p in source.demux(source.streams.video[0]) if p.pos is not None)
    path.write_bytes(clip.read_bytes()[: first.pos])
    return path


@pytest.mark.filterwarnings("ignore:fastsr. audio stream")  # .webm takes no AAC
@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
@pytest.mark.parametrize("kind", ["no video packets", "cut after the header"])
def test_a_video_without_decodable_frames_is_an_error_leaving_nothing(
    tmp_path, up, clip, kind, suffix
):
    empty = tmp_path / "empty.mkv"
    video_without_frames(empty) if kind == "no video packets" else cut_after_header(clip, empty)
    with pytest.raises(ValueError, match="has no decodable video frame"):
        upscale_video(empty, tmp_path / f"out{suffix}", up, codec="libvpx-vp9", progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["empty.mkv"]


def test_cli_errors_are_one_line(tmp_path, clip, capsys):
    """No thread traceback and no internal error: one line naming the cause and a fix."""
    cut = cut_after_header(clip, tmp_path / "cut.mkv")
    cases = [
        ([str(cut), str(tmp_path / "a.mkv")], "no decodable video frame"),
        ([str(clip), str(tmp_path / "b.webm")], "cannot hold libx264 video; use --codec libvpx"),
    ]
    if "h264_nvenc" in av.codecs_available:  # the FFmpeg in PyAV's wheels has it built in
        cases.append(([str(clip), str(tmp_path / "c.mkv"), "--codec", "h264_nvenc"],
                      "encoder h264_nvenc cannot start"))  # fmt: skip
    for argv, message in cases:
        assert main(["video", *argv, "--model", "fast_x2"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mkv"]


# BT.709 and BT.601 luma weights (Kr, Kb): the matrices the test converts with itself.
LUMA_WEIGHTS = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}
COLOUR_TAGS = {"bt709": (1, 1, 1), "bt601": (6, 6, 6)}  # FFmpeg's matrix, primaries, transfer


def studio_yuv(rgb, matrix: str) -> np.ndarray:
    kr, kb = LUMA_WEIGHTS[matrix]
    r, g, b = np.asarray(rgb, float) / 255
    y = kr * r + (1 - kr - kb) * g + kb * b
    return np.array([16 + 219 * y, 128 + 112 * (b - y) / (1 - kb), 128 + 112 * (r - y) / (1 - kr)])


def studio_rgb(yuv, matrix: str) -> np.ndarray:
    kr, kb = LUMA_WEIGHTS[matrix]
    y, pb, pr = (yuv[0] - 16) / 219, (yuv[1] - 128) / 224, (yuv[2] - 128) / 224
    r, b = y + 2 * (1 - kr) * pr, y + 2 * (1 - kb) * pb
    return 255 * np.array([r, (y - kr * r - kb * b) / (1 - kr - kb), b])


def tagged_clip(path, matrix: str, rgb, width: int = 32, height: int = 24):
    """A uniform-colour clip whose YUV values come from `matrix`, tagged as such."""
    y, u, v = np.round(studio_yuv(rgb, matrix)).astype(np.uint8)
    planes = np.concatenate([np.full((height, width), y), np.full((height // 2, width), u)])
    planes[height + height // 4 :] = v  # yuv420p layout: Y, then U and V a quarter each
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        ctx = video.codec_context
        ctx.colorspace, ctx.color_primaries, ctx.color_trc = COLOUR_TAGS[matrix]
        ctx.color_range = 1  # studio range
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, RATE)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


class NearestUpscaler:
    """Pixel doubling: leaves colours alone, so only the colour conversions are tested."""

    scale = 2

    def __call__(self, frame):
        return frame.repeat(2, 0).repeat(2, 1)


def flat_colour_upscaler(path: str):
    """Upscalers that keep flat colours: pixel doubling on the RGB path, x2 bicubic on the
    cpu backend's planar one (a Y model)."""
    if path == "rgb":
        return NearestUpscaler()
    return fastsr.Upscaler(model=tiny_graph(1, 2, BicubicSR()), backend="cpu", threads=2)


@pytest.mark.parametrize("path", ["rgb", "planes"])
@pytest.mark.parametrize("matrix", ["bt709", "bt601"])
def test_colour_description_is_carried_and_used(tmp_path, matrix, path):
    colour = (200, 60, 30)  # saturated: BT.601 and BT.709 disagree on it by > 10 levels
    clip = tagged_clip(tmp_path / "in.mkv", matrix, colour)
    up = flat_colour_upscaler(path)
    out = upscale_video(clip, tmp_path / "out.mkv", up, progress=False).path
    with av.open(str(out)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.colorspace, ctx.color_primaries, ctx.color_trc) == COLOUR_TAGS[matrix]
        assert ctx.color_range == 1
        frame = next(container.decode(video=0))
        planes = frame.to_ndarray(format="yuv420p").astype(float)
    h = frame.height
    yuv = [planes[:h].mean(), planes[h : h + h // 4].mean(), planes[h + h // 4 :].mean()]
    assert np.abs(studio_rgb(yuv, matrix) - colour).max() <= 2


# -- the planar path (cpu backend): frames as YUV planes, no swscale -----------------------


class RgbOnly:
    """An upscaler seen without its planar entry: frames go the RGB + swscale way."""

    def __init__(self, up):
        self.up, self.scale = up, up.scale

    def __call__(self, frame):
        return self.up(frame)


def test_the_cpu_backend_takes_frames_as_planes():
    cpu = fastsr.Upscaler(model=tiny_graph(1, 2), backend="cpu", threads=1)
    tags = {"colorspace": 1, "color_range": 1}
    assert planar_video(av, cpu, "yuv420p", "yuv420p", (32, 24), tags) is not None
    assert planar_video(av, cpu, "yuv420p10le", "yuv444p10le", (32, 24), tags) is not None
    assert planar_video(av, cpu, "yuv420p", "yuv420p10le", (32, 24), tags) is None  # depth
    assert planar_video(av, cpu, "yuv420p", "nv12", (32, 24), tags) is None
    assert planar_video(av, cpu, "yuv420p", "yuv420p", (32, 24), {**tags, "colorspace": 8}) is None
    reference = fastsr.Upscaler(model=tiny_graph(1, 2), backend="reference")
    assert planar_video(av, reference, "yuv420p", "yuv420p", (32, 24), tags) is None
    assert planar_video(av, RgbOnly(cpu), "yuv420p", "yuv420p", (32, 24), tags) is None
    tiled = fastsr.Upscaler(model=tiny_graph(1, 2), backend="cpu", threads=1, tile=8)
    assert planar_video(av, tiled, "yuv420p", "yuv420p", (32, 24), tags) is None


def test_chroma_location_defaults_as_ffmpeg_reads_an_untagged_stream():
    class Tagged:
        chroma_sample_location = 3

    assert chroma_location(Tagged()) == 3
    assert chroma_location(object()) == 0  # PyAV 18 exposes no chroma location
    assert chroma_sites(0, "yuv420p") == (False, True)  # MPEG-2 / H.264: left
    assert chroma_sites(0, "yuv422p10le") == (False, True)
    assert chroma_sites(0, "yuvj420p") == (False, False)  # JPEG: centred
    assert chroma_sites(3, "yuv420p") == (True, True)
    assert chroma_sites(2, "yuv420p") == (False, False)
    cpu = fastsr.Upscaler(model=tiny_graph(1, 2), backend="cpu", threads=1)
    tags = {"colorspace": 1, "color_range": 1}
    planar = planar_video(av, cpu, "yuv420p", "yuvj420p", (32, 24), tags)
    assert planar.coding["src_cosited"] == (False, True)
    assert planar.coding["dst_cosited"] == (False, False)
    assert planar_video(av, cpu, "yuv420p", "yuv420p", (32, 24), tags, 6) is None  # bottom


def smooth_clip(path, pix_fmt: str, width: int = 64, height: int = 48, frames: int = 3):
    """Soft shapes and gradients, lossless (FFV1), the kind of content chroma filters differ
    least on and a model sharpens."""
    rng = np.random.default_rng(1)
    coarse = torch.from_numpy(rng.random((1, 3, height // 8, width // 8), dtype=np.float32))
    with av.open(str(path), "w") as out:
        video = out.add_stream("ffv1", rate=RATE)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        for i in range(frames):
            soft = F.interpolate(coarse.roll(i, 3), size=(height, width), mode="bicubic")
            rgb = (255 * soft.clamp(0.05, 0.95)[0].permute(1, 2, 0)).round().byte().numpy()
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, RATE)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def decoded_planes(path) -> list[list[np.ndarray]]:
    with av.open(str(path)) as container:
        return [[p.astype(np.int64) for p in plane_arrays(f, 10 if "10" in f.format.name else 8)]
                for f in container.decode(video=0)]  # fmt: skip


# (model colour, pixel format): measured (luma, chroma) maxima of |planar - RGB path|, and
# the chroma's mean, in the format's levels. The untagged 4:2:0 clips read as left-sited on
# the planar path; swscale (the RGB path) places chroma centred whatever the tag.
PATH_AGREEMENT = {
    ("y", "yuv420p"): (1, 10, 2.1),
    ("y", "yuv420p10le"): (1, 62, 11.0),
    ("y", "yuv444p"): (1, 1, 0.2),
    ("rgb", "yuv420p"): (1, 6, 1.5),
}


@pytest.mark.parametrize("color,pix_fmt", sorted(PATH_AGREEMENT))
def test_planes_and_the_rgb_path_agree(tmp_path, color, pix_fmt):
    """The planar path against the RGB + swscale path it replaces, both lossless (FFV1).
    Luma agrees within a level and so does everything in 4:4:4. 4:2:0 chroma differs
    more: the planar path resamples it at the left sites, swscale centred (so an RGB
    model's chroma, 1 level apart when both were centred, differs by up to 6), and for a
    Y model the planar path upscales the chroma planes by bicubic where the RGB path blurs
    them by swscale's 4:2:0 -> 4:4:4 -> 4:2:0 round trip (coarser still for 10-bit
    sources, which cannot use full chroma interpolation)."""
    luma_max, chroma_max, chroma_mean = PATH_AGREEMENT[color, pix_fmt]
    up = fastsr.Upscaler(model=tiny_graph(1 if color == "y" else 3, 2), backend="cpu", threads=2)
    clip = smooth_clip(tmp_path / "in.mkv", pix_fmt)
    planar = upscale_video(clip, tmp_path / "planes.mkv", up, codec="ffv1", progress=False)
    rgb = upscale_video(clip, tmp_path / "rgb.mkv", RgbOnly(up), codec="ffv1", progress=False)
    for ours, theirs in zip(decoded_planes(planar.path), decoded_planes(rgb.path), strict=True):
        luma, *chroma = (np.abs(a - b) for a, b in zip(ours, theirs, strict=True))
        assert luma.max() <= luma_max and luma.mean() < 0.25
        assert max(c.max() for c in chroma) <= chroma_max
        assert max(c.mean() for c in chroma) <= chroma_mean


def test_ten_bit_colours_survive_the_rgb_path(tmp_path):
    clip = smooth_clip(tmp_path / "in.mkv", "yuv420p10le")
    out = upscale_video(clip, tmp_path / "out.mkv", NearestUpscaler(), codec="ffv1", progress=False)
    for before, after in zip(decoded_planes(clip), decoded_planes(out.path), strict=True):
        for a, b in zip(before, after, strict=True):  # swscale's full chroma path lost 190
            assert abs(a.mean() - b.mean()) < 2

"""The `fastsr` command and image files: formats, 16 bits, safe writes, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from test_api import one_torch_thread, random_image, tiny_graph  # noqa: F401

import fastsr
from fastsr import _C, cli
from fastsr.graph.onnx_export import export_onnx
from fastsr.imagefile import read_image, write_image

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """The tiny test network as an ONNX file, so the CLI loads it like any user model."""
    path = tmp_path_factory.mktemp("models") / "tiny_x2.onnx"
    export_onnx(tiny_graph(), path)
    return path


@pytest.fixture(scope="module")
def up():
    return fastsr.Upscaler(model=tiny_graph(), backend="reference")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastsr: error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


# -- image files ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 6), (5, 6, 3), (5, 6, 4)], ids=["grey", "rgb", "rgba"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_round_trip_keeps_every_bit(tmp_path, shape, dtype):
    pixels = random_image(shape, dtype)
    write_image(tmp_path / "a.png", pixels)
    back = read_image(tmp_path / "a.png")
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, pixels)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary left


@pytest.mark.parametrize("suffix", [".jpg", ".webp", ".bmp", ".tif"])
def test_other_formats_by_suffix(tmp_path, suffix):
    pixels = random_image((8, 8, 3), np.uint8)
    write_image(tmp_path / f"a{suffix}", pixels)
    back = read_image(tmp_path / f"a{suffix}")
    assert back.shape == (8, 8, 3) and back.dtype == np.uint8
    expected = {".jpg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF"}[suffix]
    assert Image.open(tmp_path / f"a{suffix}").format == expected


def test_sixteen_bit_to_an_eight_bit_format_is_rounded(tmp_path):
    pixels = np.array([[[0, 257, 65535]]], np.uint16)
    write_image(tmp_path / "a.bmp", pixels)
    np.testing.assert_array_equal(read_image(tmp_path / "a.bmp"), [[[0, 1, 255]]])


def test_image_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image file"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ValueError, match="not a readable image"):
        read_image(tmp_path / "corrupt.png")
    with pytest.raises(ValueError, match="image format of a.xyz"):
        write_image(tmp_path / "a.xyz", random_image((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="JPEG has no alpha"):
        write_image(tmp_path / "a.jpg", random_image((4, 4, 4), np.uint8))


def test_a_failed_write_leaves_the_old_file_untouched(tmp_path, monkeypatch):
    target = tmp_path / "a.png"
    target.write_bytes(b"old")

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(target, random_image((4, 4, 3), np.uint8))
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.png"]


# -- fastsr upscale ---------------------------------------------------------------------


def test_upscale_one_file(tmp_path, capsys, model_file, up):
    pixels = random_image((6, 7, 3), np.uint8)
    write_image(tmp_path / "in.png", pixels)
    code, _, err = run_cli(
        capsys, "upscale", tmp_path / "in.png", "-o", tmp_path / "out.png",
        "--model", model_file, "--backend", "reference",
    )  # fmt: skip
    assert code == 0, err
    np.testing.assert_array_equal(read_image(tmp_path / "out.png"), up(pixels))


def test_upscale_keeps_16_bit_png_16_bit(tmp_path, capsys, model_file, up):
    pixels = random_image((6, 7, 3), np.uint16)
    write_image(tmp_path / "in.png", pixels)
    code, _, err = run_cli(
        capsys, "upscale", tmp_path / "in.png", "-o", tmp_path / "out.png",
        "--model", model_file, "--backend", "reference", "--scale", "2",
    )  # fmt: skip
    assert code == 0, err
    out = read_image(tmp_path / "out.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, up(pixels))


def test_upscale_folders_and_files_into_a_folder(tmp_path, capsys, model_file):
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    write_image(tmp_path / "in" / "a.png", random_image((4, 5, 4), np.uint8))
    write_image(tmp_path / "in" / "b.jpg", random_image((6, 4, 3), np.uint8))
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    write_image(tmp_path / "c.bmp", random_image((3, 3), np.uint8))
    code, _, err = run_cli(
        capsys, "upscale", tmp_path / "in", tmp_path / "c.bmp", "-o", tmp_path / "out",
        "--model", model_file, "--backend", "reference", "--tile", "2", "--threads", "1",
        "--max-memory", "64",
    )  # fmt: skip
    assert code == 0, err
    shapes = {p.name: read_image(p).shape for p in (tmp_path / "out").iterdir()}
    assert shapes == {"a.png": (8, 10, 4), "b.jpg": (12, 8, 3), "c.bmp": (6, 6)}


def test_existing_output_needs_overwrite(tmp_path, capsys, model_file):
    write_image(tmp_path / "in.png", random_image((4, 4, 3), np.uint8))
    (tmp_path / "out.png").write_bytes(b"precious")
    args = ["upscale", tmp_path / "in.png", "-o", tmp_path / "out.png", "--model", model_file]
    code, _, err = run_cli(capsys, *args, "--backend", "reference")
    assert code == 1
    assert_one_line_error(err, "out.png exists", "--overwrite")
    assert (tmp_path / "out.png").read_bytes() == b"precious"
    code, _, err = run_cli(capsys, *args, "--backend", "reference", "--overwrite")
    assert code == 0, err
    assert read_image(tmp_path / "out.png").shape == (8, 8, 3)


@pytest.mark.parametrize(
    ("make_args", "fragments"),
    [
        (lambda d, m: [d / "missing.png", "-o", d / "o.png"], ["no such file", "missing.png"]),
        (lambda d, m: [d / "in.png", d / "in.png", "-o", d / "odir"], ["same file name"]),
        (lambda d, m: [d / "in.png", "-o", d / "o.txt"], ["no image suffix"]),
        (lambda d, m: [d / "bad.png", "-o", d / "o.png"], ["not a readable image"]),
        (lambda d, m: [d / "in.png", "-o", d / "o.png", "--scale", "3"], ["x2", "not x3"]),
        (lambda d, m: [d / "in.png", "-o", d / "o.png", "--model", "nope"], ["unknown model"]),
        (lambda d, m: [d / "in.png", "-o", d / "o.png", "--model", d / "w.pth"], ["w.pth"]),
    ],
    ids=["missing_input", "colliding_names", "bad_suffix", "corrupt_input",
         "wrong_scale", "unknown_model", "missing_weights"],
)  # fmt: skip
def test_upscale_errors_are_one_line(tmp_path, capsys, model_file, make_args, fragments):
    write_image(tmp_path / "in.png", random_image((4, 4, 3), np.uint8))
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    args = make_args(tmp_path, model_file)
    if "--model" not in args:
        args += ["--model", model_file]
    code, out, err = run_cli(capsys, "upscale", *args, "--backend", "reference")
    assert code == 1 and out == ""
    assert_one_line_error(err, *fragments)
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".*partial*"))


def test_unwritable_output_directory(tmp_path, capsys, model_file, monkeypatch):
    write_image(tmp_path / "in.png", random_image((4, 4, 3), np.uint8))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: mode != os.W_OK and real_access(p, mode))
    code, _, err = run_cli(
        capsys, "upscale", tmp_path / "in.png", "-o", tmp_path / "o.png", "--model", model_file
    )
    assert code == 1
    assert_one_line_error(err, "not writable")


def test_usage_errors_exit_2_with_one_line(capsys):
    code, _, err = run_cli(capsys, "upscale", "a.png")
    assert code == 2
    assert_one_line_error(err, "-o/--output")
    code, _, err = run_cli(capsys, "upscale", "a.png", "-o", "b.png", "--backend", "gpu")
    assert code == 2
    assert_one_line_error(err, "invalid choice: 'gpu'")
    code, _, err = run_cli(capsys, "upscale", "a.png", "-o", "b.png", "--tile", "0")
    assert code == 2
    assert_one_line_error(err, "positive")


# -- other commands ---------------------------------------------------------------------


def test_video_command(tmp_path, capsys, model_file):
    from test_video import make_clip, probe

    clip = make_clip(tmp_path / "in.mkv")
    args = ["video", clip, tmp_path / "out.mkv", "--model", model_file, "--backend", "reference"]
    code, out, err = run_cli(capsys, *args, "--crf", "23")
    assert code == 0, err
    assert "8 frames" in out
    result = probe(tmp_path / "out.mkv")
    assert len(result["times"]) == 8 and result["audio"] and result["size"] == {(64, 48)}
    code, _, err = run_cli(capsys, *args)
    assert code == 1
    assert_one_line_error(err, "exists")


def test_partial_video_exits_3(tmp_path, capsys, model_file, monkeypatch):
    from test_video import FailingUpscaler, make_clip, probe

    clip = make_clip(tmp_path / "in.mkv")
    make_upscaler = cli._upscaler
    monkeypatch.setattr(
        cli, "_upscaler", lambda args: FailingUpscaler(make_upscaler(args), 6, OSError("bad"))
    )
    args = ["video", clip, tmp_path / "out.mkv", "--model", model_file, "--backend", "reference"]
    code, _, err = run_cli(capsys, *args)
    assert code == 3
    assert_one_line_error(err, "PARTIAL", "first 5 frames")
    assert len(probe(tmp_path / "out.mkv")["times"]) == 5
    (tmp_path / "out.mkv").unlink()
    code, _, err = run_cli(capsys, *args, "--all-or-nothing")
    assert code == 3
    assert_one_line_error(err, "no output written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]


def test_export_onnx_command(tmp_path, capsys, model_file, up):
    code, out, err = run_cli(capsys, "export-onnx", model_file, tmp_path / "again.onnx")
    assert code == 0, err
    pixels = random_image((5, 5, 3), np.float32)
    again = fastsr.upscale(pixels, model=str(tmp_path / "again.onnx"), backend="reference")
    np.testing.assert_allclose(again, up(pixels), atol=1e-6)
    code, _, err = run_cli(capsys, "export-onnx", model_file, tmp_path / "again.onnx")
    assert code == 1
    assert_one_line_error(err, "exists")


def test_eval_command_passes_the_upscaler_to_evaluate(tmp_path, capsys, model_file, up):
    hr = tmp_path / "data" / "Tiny"
    hr.mkdir(parents=True)
    Image.fromarray(random_image((48, 40, 3), np.uint8)).save(hr / "one.png")
    code, out, err = run_cli(
        capsys, "eval", "--data", tmp_path / "data", "--model", model_file,
        "--backend", "reference", "--per-image",
    )  # fmt: skip
    assert code == 0, err
    assert "Tiny" in out and "model" in out and "bicubic" in out and "one" in out
    code, _, err = run_cli(capsys, "eval", "--data", tmp_path / "none", "--model", model_file)
    assert code == 1
    assert_one_line_error(err, "no data folder")


def test_info_command(capsys):
    code, out, _ = run_cli(capsys, "info")
    assert code == 0
    assert f"fastsr {fastsr.__version__}" in out
    for line in ("backend reference: available", "backend cpu:", "cpu kernels:", "cuda:"):
        assert line in out
    assert f"bf16 kernels: {_C.bf16_isa()}" in out
    assert "shipped models:" in out


def test_bench_command_points_at_the_benchmarks(capsys, monkeypatch):
    calls = []
    envs = []
    monkeypatch.setattr(
        cli.subprocess, "call", lambda command, env: calls.append(command) or envs.append(env) or 0
    )
    code, _, _ = run_cli(capsys, "bench", "-k", "conv")
    assert code == 0
    assert calls[0][-4:] == [str(REPO / "benchmarks"), "--benchmark-only", "-k", "conv"]
    assert envs[0] is None  # the full run, not the sweep
    assert run_cli(capsys, "bench", "--sweep")[0] == 0
    assert envs[1]["FASTSR_BENCH_SWEEP"] == "1"


def test_python_dash_m_fastsr_runs_and_fails_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fastsr", "upscale", str(tmp_path / "x.png"), "-o", "y.png"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"fastsr: error: no such file or folder: {tmp_path / 'x.png'}"
    ]
    version = subprocess.run(
        [sys.executable, "-m", "fastsr", "--version"], capture_output=True, text=True, cwd=REPO
    )
    assert version.returncode == 0 and version.stdout.strip() == f"fastsr {fastsr.__version__}"


def test_unexpected_errors_are_one_line_too(capsys, monkeypatch):
    def broken():
        raise KeyError("plan")

    monkeypatch.setattr("fastsr.backends.backend_status", broken)
    code, _, err = run_cli(capsys, "info")
    assert code == 1
    assert_one_line_error(err, "internal error KeyError")


def test_memory_and_thread_options_reach_the_upscaler(model_file):
    argv = ["upscale", "a.png", "-o", "b.png", "--model", str(model_file), "--backend",
            "reference", "--max-memory", "64", "--tile", "32", "--threads", "1"]  # fmt: skip
    up = cli._upscaler(cli.build_parser().parse_args(argv))
    assert (up.max_memory, up.tile, up.threads) == (64 << 20, 32, 1)
    default = cli._upscaler(cli.build_parser().parse_args(argv[:8]))
    assert default.max_memory == fastsr.api.DEFAULT_MAX_MEMORY and default.tile is None


# -- messages, folders, options (issue #16) ----------------------------------------------


def test_cli_module_imports_nothing_heavy():
    """`fastsr --help` must answer at once: no torch, numpy, Pillow or engine on import."""
    probe = (
        "import sys, fastsr.cli; heavy = ('torch', 'numpy', 'PIL', 'tqdm', 'fastsr.api', "
        "'fastsr.graph', 'fastsr.imagefile'); print([m for m in heavy if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "fastsr", "upscale", "--help"], capture_output=True, text=True
    ).stdout
    for option in ("--quality", "--lossless", "--strip-metadata", "--max-pixels",
                   "--skip-existing", "--recursive", "DPI is multiplied by the scale"):  # fmt: skip
        assert option in " ".join(help_text.split())


def test_single_file_success_says_what_was_written(tmp_path, capsys, model_file):
    write_image(tmp_path / "in.png", random_image((6, 7, 3), np.uint8))
    code, out, err = run_cli(
        capsys, "upscale", tmp_path / "in.png", "-o", tmp_path / "new" / "out.jpg",
        "--model", model_file, "--backend", "reference", "--quality", "80",
    )  # fmt: skip
    assert code == 0, err
    size = (tmp_path / "new" / "out.jpg").stat().st_size
    line = out.strip()
    assert line.startswith(f"{tmp_path / 'new' / 'out.jpg'}: 14x12, ") and line.endswith(" s")
    assert (f"{size} bytes" if size < 1000 else f"{size / 1000:.1f} KB") in line
    reference = tmp_path / "pillow.jpg"
    Image.fromarray(random_image((12, 14, 3), np.uint8)).save(reference, quality=80)
    with Image.open(tmp_path / "new" / "out.jpg") as ours, Image.open(reference) as theirs:
        assert ours.quantization == theirs.quantization


def test_folder_run_reports_each_failure_and_a_summary(tmp_path, capsys, model_file):
    from test_batch import mixed_folder

    source = mixed_folder(tmp_path / "in")
    args = ["upscale", source, "-o", tmp_path / "out", "--model", model_file, "--backend",
            "reference"]  # fmt: skip
    code, out, err = run_cli(capsys, *args)
    assert code == 1
    failures = [line for line in err.strip().splitlines() if line.startswith("fastsr: failed: ")]
    assert len(failures) == 3 and len(err.strip().splitlines()) == 3
    assert all("is not a readable image" in line for line in failures)
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("2 done, 3 failed, 1 skipped (1 not an image file) in ")
    assert "1 subfolder not entered" in summary
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.jpg"]

    code, _, err = run_cli(capsys, *args)  # a rerun names both ways forward
    assert code == 1
    assert_one_line_error(err, "exists", "--skip-existing", "--overwrite")
    for bad in ("truncated.png", "empty.png", "fake.jpg"):
        (source / bad).unlink()
    code, out, err = run_cli(capsys, *args, "--skip-existing", "--recursive")
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith("1 done, 0 failed, 3 skipped")
    assert read_image(tmp_path / "out" / "sub" / "c.png").shape == (6, 6, 3)


def test_threads_beyond_the_cores_are_clamped_with_a_note(tmp_path, capsys, model_file):
    write_image(tmp_path / "in.png", random_image((4, 4, 3), np.uint8))
    cores = cli._cores()
    code, out, err = run_cli(
        capsys, "upscale", tmp_path / "in.png", "-o", tmp_path / "o.png", "--model", model_file,
        "--backend", "reference", "--threads", cores + 7,
    )  # fmt: skip
    assert code == 0
    assert err.strip() == (
        f"fastsr: note: --threads {cores + 7} is more than the {cores} CPU cores here; "
        f"using {cores}"
    )
    args = cli.build_parser().parse_args(["upscale", "a", "-o", "b", "--threads", "99999"])
    assert cli._threads(args.threads) == cores


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--lossless"], ["JPEG outputs", "cannot be lossless"]),
        (["--max-pixels", "10"], ["megapixels", "--max-pixels 16"]),
        (["--quality", "0"], ["1 to 100"]),
        (["--overwrite", "--skip-existing"], ["not allowed with"]),
    ],
    ids=["lossless_jpeg", "too_many_pixels", "bad_quality", "contradiction"],
)
def test_option_errors_are_one_line(tmp_path, capsys, model_file, extra, fragments):
    write_image(tmp_path / "in.png", random_image((4, 4, 3), np.uint8))
    code, out, err = run_cli(
        capsys, "upscale", tmp_path / "in.png", "-o", tmp_path / "o.jpg", "--model", model_file,
        "--backend", "reference", *extra,
    )  # fmt: skip
    assert code in (1, 2) and out == ""
    assert_one_line_error(err, *fragments)
    assert not (tmp_path / "o.jpg").exists()


def test_a_decompression_bomb_is_one_line_with_the_fix(tmp_path, capsys, model_file):
    from test_imagefile import png_with_size

    (tmp_path / "bomb.png").write_bytes(png_with_size(30_000, 30_000))
    code, _, err = run_cli(
        capsys, "upscale", tmp_path / "bomb.png", "-o", tmp_path / "o.png", "--model", model_file
    )
    assert code == 1
    assert_one_line_error(err, "bomb.png is 900.0 megapixels", "--max-pixels 900000000")


def test_upright_output_with_metadata_or_stripped(tmp_path, capsys, model_file, up):
    from test_imagefile import SRGB, camera_exif

    Image.fromarray(random_image((4, 6, 3), np.uint8)).save(
        tmp_path / "in.png", icc_profile=SRGB, exif=camera_exif(8, 6, 4)
    )
    base = ["upscale", tmp_path / "in.png", "--model", model_file, "--backend", "reference"]
    assert run_cli(capsys, *base, "-o", tmp_path / "kept.png")[0] == 0
    assert run_cli(capsys, *base, "-o", tmp_path / "bare.png", "--strip-metadata")[0] == 0
    with Image.open(tmp_path / "in.png") as source:
        upright = np.asarray(ImageOps.exif_transpose(source))
    np.testing.assert_array_equal(read_image(tmp_path / "kept.png"), up(upright))
    with Image.open(tmp_path / "kept.png") as kept, Image.open(tmp_path / "bare.png") as bare:
        assert kept.info["icc_profile"] == SRGB and kept.getexif()[0x0112] == 1
        assert "icc_profile" not in bare.info and "exif" not in bare.info
        assert kept.size == bare.size == (8, 12)


def test_eval_on_a_plain_image_folder(tmp_path, capsys, model_file):
    images = tmp_path / "photos"
    images.mkdir()
    Image.fromarray(random_image((48, 40, 3), np.uint8)).save(images / "one.png")
    code, out, err = run_cli(
        capsys, "eval", "--data", images, "--model", model_file, "--backend", "reference"
    )
    assert code == 0, err
    assert out.startswith("photos ") and "PSNR" in out and "bicubic" in out
    (images / "one.png").unlink()
    (images / "one.jpg").write_bytes(b"")
    code, _, err = run_cli(capsys, "eval", "--data", images, "--model", model_file)
    assert code == 1
    assert_one_line_error(err, "no .png or .bmp images", "dataset folders")


def test_export_onnx_clamps_like_the_engine(tmp_path, capsys, model_file, up):
    import onnxruntime

    code, out, err = run_cli(capsys, "export-onnx", model_file, tmp_path / "clamped.onnx")
    assert code == 0 and "clamped to [0, 1]" in out, err
    session = onnxruntime.InferenceSession(str(tmp_path / "clamped.onnx"))
    pixels = random_image((6, 5, 3), np.float32)
    nchw = np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])
    (result,) = session.run(None, {session.get_inputs()[0].name: nchw})
    raw = onnxruntime.InferenceSession(str(model_file))
    (unclamped,) = raw.run(None, {raw.get_inputs()[0].name: nchw})
    assert unclamped.min() < 0 or unclamped.max() > 1  # the tiny model overshoots
    np.testing.assert_allclose(result, np.clip(unclamped, 0, 1), atol=1e-6)
    np.testing.assert_allclose(result[0].transpose(1, 2, 0), up(pixels), atol=1e-5)


def test_a_pickled_module_names_the_fix(tmp_path, capsys):
    import torch

    torch.save(torch.nn.Conv2d(3, 12, 3), tmp_path / "whole.pth")
    code, _, err = run_cli(capsys, "export-onnx", tmp_path / "whole.pth", tmp_path / "o.onnx")
    assert code == 1
    assert_one_line_error(err, "torch.nn.modules.conv.Conv2d", "state_dict()")
    assert "weights_only" not in err and "\x1b" not in err

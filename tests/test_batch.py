"""Folders of images: bad files fail alone, outputs are whole or absent, runs resume."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image
from test_api import random_image, tiny_graph

import fastsr
from fastsr import batch as batch_module
from fastsr.batch import DONE, FAILED, SKIPPED, ImageOptions, upscale_folder, upscale_image
from fastsr.imagefile import read_image


@pytest.fixture(scope="module")
def up():
    return fastsr.Upscaler(model=tiny_graph(), backend="reference")


def save(path, shape, dtype=np.uint8):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = random_image(shape, dtype)
    Image.fromarray(pixels).save(path)
    return pixels


def mixed_folder(root):
    """Good images, a truncated PNG, an empty PNG, a text file called .jpg, a note, a subfolder."""
    save(root / "a.png", (4, 5, 3))
    save(root / "b.jpg", (6, 4, 3))
    save(root / "sub" / "c.png", (3, 3, 3))
    good = (root / "a.png").read_bytes()
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "fake.jpg").write_text("not a photo")
    (root / "notes.txt").write_text("shot on a tuesday")
    (root / ".DS_Store").write_bytes(b"\0\0")
    return root


def digests(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_one_bad_file_never_costs_the_good_ones(tmp_path, up):
    source = mixed_folder(tmp_path / "in")
    before = digests(source)
    report = upscale_folder(source, tmp_path / "out" / "new", model=up)
    assert sorted(r.source.name for r in report.done) == ["a.png", "b.jpg"]
    failed = {r.source.name: r.reason for r in report.failed}
    assert sorted(failed) == ["empty.png", "fake.jpg", "truncated.png"]
    assert all("is not a readable image" in reason for reason in failed.values())
    skipped = [(r.source.name, r.reason) for r in report.skipped]
    assert skipped == [("notes.txt", "not an image file")]
    assert report.skipped_folders == [source / "sub"]
    assert sorted(p.name for p in (tmp_path / "out" / "new").iterdir()) == ["a.png", "b.jpg"]
    assert read_image(tmp_path / "out" / "new" / "a.png").shape == (8, 10, 3)
    assert digests(source) == before  # the inputs are never touched
    summary = report.summary()
    assert summary.startswith("2 done, 3 failed, 1 skipped (1 not an image file) in ")
    assert "1 subfolder not entered" in summary and "--recursive" in summary


def test_recursive_mirrors_the_tree(tmp_path, up):
    source = tmp_path / "in"
    save(source / "a.png", (4, 4, 3))
    save(source / "x" / "y" / "b.png", (3, 5, 3))
    report = upscale_folder(source, source / "up", model=up, recursive=True)
    assert len(report.done) == 2 and not report.skipped_folders
    assert read_image(source / "up" / "x" / "y" / "b.png").shape == (6, 10, 3)
    again = upscale_folder(source, source / "up", model=up, recursive=True, overwrite=True)
    assert len(again.done) == 2  # the output folder inside the input is not an input


def test_existing_outputs_refuse_resume_or_get_replaced(tmp_path, up):
    source = tmp_path / "in"
    for name in ("a.png", "b.png", "c.png"):
        save(source / name, (4, 4, 3))
    out = tmp_path / "out"
    upscale_folder(source, out, model=up)
    (out / "b.png").unlink()  # as if the run had stopped before b
    stamp = (out / "a.png").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="skip-existing.*overwrite"):
        upscale_folder(source, out, model=up)
    resumed = upscale_folder(source, out, model=up, skip_existing=True)
    assert [r.source.name for r in resumed.done] == ["b.png"]
    assert sorted((r.source.name, r.reason) for r in resumed.skipped) == [
        ("a.png", "output exists"), ("c.png", "output exists")
    ]
    assert (out / "a.png").stat().st_mtime_ns == stamp
    replaced = upscale_folder(source, out, model=up, overwrite=True)
    assert len(replaced.done) == 3
    with pytest.raises(ValueError, match="contradict"):
        upscale_folder(source, out, model=up, overwrite=True, skip_existing=True)


def test_an_output_that_would_replace_its_input_is_refused(tmp_path, up):
    save(tmp_path / "a.png", (4, 4, 3))
    before = digests(tmp_path)
    with pytest.raises(ValueError, match="would replace an input"):
        upscale_folder(tmp_path, tmp_path, model=up, overwrite=True)
    assert digests(tmp_path) == before


def test_a_failed_write_leaves_no_partial_file(tmp_path, up, monkeypatch):
    for name in ("a.png", "b.png"):
        save(tmp_path / "in" / name, (4, 4, 3))
    real_save = Image.Image.save

    def full_disk_on_b(self, path, *args, **kwargs):
        if "b.fastsr-partial" in str(path):
            with open(path, "wb") as half:
                half.write(b"\x89PNG half")
            raise OSError(28, "No space left on device")
        return real_save(self, path, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_disk_on_b)
    report = upscale_folder(tmp_path / "in", tmp_path / "out", model=up)
    assert [r.source.name for r in report.done] == ["a.png"]
    assert "No space left" in report.failed[0].reason
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]


def test_upscale_image_reports_instead_of_raising(tmp_path, up):
    pixels = save(tmp_path / "a.png", (5, 6, 3))
    result = upscale_image(up, tmp_path / "a.png", tmp_path / "o" / "a.webp",
                           ImageOptions(lossless=True))  # fmt: skip
    assert result.status == DONE and (result.width, result.height) == (12, 10)
    assert result.bytes == (tmp_path / "o" / "a.webp").stat().st_size
    np.testing.assert_array_equal(read_image(tmp_path / "o" / "a.webp"), up(pixels))
    line = result.describe()
    assert line.startswith(f"{tmp_path / 'o' / 'a.webp'}: 12x10, ") and line.endswith(" s")
    missing = upscale_image(up, tmp_path / "none.png", tmp_path / "x.png")
    assert missing.status == FAILED and "no image file" in missing.reason
    skipped = upscale_image(up, tmp_path / "a.png", tmp_path / "o" / "a.webp", skip_existing=True)
    assert skipped.status == SKIPPED
    too_big = upscale_image(up, tmp_path / "a.png", tmp_path / "y.png", ImageOptions(max_pixels=29))
    assert too_big.status == FAILED and "--max-pixels 30" in too_big.reason


def test_options_are_checked_before_any_work(tmp_path, up):
    save(tmp_path / "in" / "a.jpg", (4, 4, 3))
    with pytest.raises(ValueError, match="quality"):
        ImageOptions(quality=0)
    with pytest.raises(ValueError, match="max_pixels"):
        ImageOptions(max_pixels=0)
    with pytest.raises(ValueError, match="JPEG outputs such as"):
        upscale_folder(tmp_path / "in", tmp_path / "out", model=up, lossless=True)
    assert not (tmp_path / "out").exists()


def test_metadata_is_kept_or_stripped(tmp_path, up):
    from test_imagefile import SRGB, camera_exif

    (tmp_path / "in").mkdir()
    Image.fromarray(random_image((4, 6, 3), np.uint8)).save(
        tmp_path / "in" / "a.jpg", icc_profile=SRGB, dpi=(300, 300), exif=camera_exif(6, 6, 4)
    )
    kept = upscale_folder(tmp_path / "in", tmp_path / "kept", model=up)
    stripped = upscale_folder(tmp_path / "in", tmp_path / "bare", model=up, keep_metadata=False)
    assert len(kept.done) == len(stripped.done) == 1
    with Image.open(tmp_path / "kept" / "a.jpg") as image:
        assert image.size == (8, 12)  # upright
        assert image.info["icc_profile"] == SRGB and image.info["dpi"] == (600, 600)
        assert image.getexif()[0x0112] == 1
    with Image.open(tmp_path / "bare" / "a.jpg") as image:
        assert image.size == (8, 12)
        assert "icc_profile" not in image.info and "exif" not in image.info


def test_upscale_folder_is_in_the_package(tmp_path, up):
    assert fastsr.upscale_folder is batch_module.upscale_folder
    save(tmp_path / "a.png", (4, 4, 3))
    report = fastsr.upscale_folder(tmp_path / "a.png", tmp_path / "o", model=tiny_graph(),
                                   backend="reference")  # fmt: skip
    assert len(report.done) == 1

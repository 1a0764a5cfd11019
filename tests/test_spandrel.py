"""Models loaded by spandrel: every architecture of tests/spandrel_cases.py saved with
random weights as .pth and .safetensors, loaded by path through fastsr.upscale, against
spandrel's own eager module."""

from __future__ import annotations

import importlib.util
import pickle
import sys
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from spandrel_cases import SPANDREL_CASES, build

import fastsr
from fastsr.graph import load
from fastsr.graph.from_spandrel import import_spandrel, needs_torch
from fastsr.graph.onnx_export import export_onnx
from fastsr.graph.serialize import save_graph
from fastsr.tiling import receptive_radius

spandrel = import_spandrel()


def _save(module: torch.nn.Module, path) -> None:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    else:
        torch.save(module.state_dict(), str(path))


def _eager(module, image: np.ndarray) -> np.ndarray:
    """spandrel's descriptor around the same weights, NCHW float in, HWC out."""
    descriptor = spandrel.ModelLoader().load_from_state_dict(module.state_dict())
    descriptor.model.eval()
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].clone()
    with torch.no_grad():
        y = descriptor(x).clamp(0, 1)
    return y[0].permute(1, 2, 0).numpy()


def _image(h: int, w: int, channels: int) -> np.ndarray:
    return np.random.default_rng(h * 100 + w).random((h, w, channels), dtype=np.float32)


def _upscale(path, image, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fastsr.upscale(image if image.shape[2] > 1 else image[..., 0], model=path,
                             **options)
    messages = [str(w.message) for w in caught if str(w.message).startswith("fastsr")]
    return out.reshape(*out.shape[:2], -1), messages


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("name", sorted(SPANDREL_CASES))
def test_model_file_matches_spandrel_eager(name, suffix, tmp_path):
    _, channels, path_taken = SPANDREL_CASES[name]
    module = build(name)
    path = tmp_path / f"{name}{suffix}"
    _save(module, path)
    graph = load(path)
    assert ("torch" if needs_torch(graph) else "kernels") == path_taken, graph.meta.get(
        "fallback")
    image = _image(19, 22, channels)  # odd sizes
    expected = _eager(module, image)
    got, messages = _upscale(path, image)
    assert got.shape == expected.shape
    assert graph.meta["scale"] * 19 == got.shape[0]
    # The fallback runs the same module; its float difference is torch's own conv
    # algorithm choice for a differently laid-out input.
    np.testing.assert_allclose(got, expected, atol=1e-4 if path_taken == "kernels" else 2e-5)
    if path_taken == "torch":
        assert len(messages) == 1 and "runs in PyTorch" in messages[0]
    else:
        assert messages == []


def _bicubic(plane: np.ndarray, scale: int) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(plane))[None, None]
    up = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic",
                                         align_corners=False)
    return up[0, 0].numpy()


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("name,size,tile", [
    ("compact_grey_x2", (17, 20), None),
    # padded by spandrel to a multiple of 4 and by its forward to 2: the chroma still
    # comes from the frame, not from its padding, whole and in tiles
    ("esrgan_grey_x2_unshuffle", (17, 21), None),
    ("esrgan_grey_x2_unshuffle", (23, 30), 8),
])
def test_grey_model_on_rgb_runs_on_full_range_luma_and_carries_the_chroma(
        name, size, tile, backend, tmp_path):
    from spandrel.__helpers.size_req import pad_tensor

    module = build(name)
    path = tmp_path / "grey.pth"
    _save(module, path)
    image = 0.2 + 0.6 * _image(*size, 3)  # chroma in range: no clamping on the way back
    # JPEG's full-range BT.601 (an independent statement of the same conversion)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    cb, cr = (b - luma) / 1.772, (r - luma) / 1.402
    requirements = spandrel.ModelLoader().load_from_state_dict(
        module.state_dict()).size_requirements
    _, padded = pad_tensor(torch.from_numpy(luma)[None, None], requirements)
    with torch.no_grad():  # unclamped: the pipeline clamps RGB, not the luma
        y = module(padded)[0, 0, : 2 * size[0], : 2 * size[1]].numpy()
    cb, cr = _bicubic(cb, 2), _bicubic(cr, 2)
    expected = np.stack([y + 1.402 * cr, y - (0.114 * 1.772 * cb + 0.299 * 1.402 * cr) / 0.587,
                         y + 1.772 * cb], axis=-1).clip(0, 1)
    got, _ = _upscale(path, image, backend=backend, tile=tile)
    np.testing.assert_allclose(got, expected, atol=1e-4)



PADDED = ["esrgan_x2_unshuffle", "esrgan_x1_unshuffle", "rcan_x2"]


@pytest.mark.parametrize("size", [(5, 7), (1, 6), (16, 12)])
@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("name", PADDED)
def test_padded_models_match_spandrel_on_each_backend(name, backend, size, tmp_path):
    """Sizes below spandrel's minimum, not a multiple of it, and one that is."""
    path = tmp_path / f"{name}.pth"
    module = build(name)
    _save(module, path)
    image = _image(*size, 3)
    got, messages = _upscale(path, image, backend=backend)
    np.testing.assert_allclose(got, _eager(module, image), atol=1e-4)
    assert messages == []


@pytest.mark.parametrize(
    "name", ["esrgan_x4", "compact_prelu_x4", "esrgan_x2_unshuffle", "esrgan_x1_unshuffle"])
def test_tiled_equals_untiled_with_the_graph_receptive_field(name, tmp_path):
    path = tmp_path / f"{name}.pth"
    _save(build(name), path)
    radius = receptive_radius(load(path))
    assert radius is not None and radius > 4  # wider than a 3x3 conv: the halo matters
    image = _image(40, 37, 3)
    whole, _ = _upscale(path, image)
    tiled, _ = _upscale(path, image, tile=8)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_fallback_runs_with_alpha_and_uint8(tmp_path):
    path = tmp_path / "swinir.pth"
    _save(build("swinir_x2"), path)
    rgba = (np.random.default_rng(1).random((17, 20, 4)) * 255).astype(np.uint8)
    with pytest.warns(RuntimeWarning, match="SwinIR runs in PyTorch"):
        out = fastsr.upscale(rgba, model=str(path))
    assert out.shape == (34, 40, 4) and out.dtype == np.uint8


def test_fallback_graph_is_refused_by_serialisation_and_kernel_backends(tmp_path):
    path = tmp_path / "swinir.pth"
    _save(build("swinir_x2"), path)
    graph = load(path)
    with pytest.raises(ValueError, match="could not be captured"):
        save_graph(graph, tmp_path / "graph.safetensors")
    with pytest.raises(ValueError, match="cannot export to ONNX"):
        export_onnx(graph, tmp_path / "graph.onnx")
    with pytest.raises(ValueError, match="backend 'cpu' cannot run this model"):
        fastsr.Upscaler(model=str(path), backend="cpu")
    assert not (tmp_path / "graph.safetensors").exists()
    assert not (tmp_path / "graph.onnx").exists()


def test_metadata_is_spandrels(tmp_path):
    path = tmp_path / "span.pth"
    _save(build("span_x4"), path)
    meta = load(path).meta
    assert (meta["architecture"], meta["scale"], meta["color"]) == ("SPAN", 4, "rgb")
    assert set(meta["size_requirements"]) == {"minimum", "multiple_of", "square"}
    assert meta["tiling"] in ("supported", "discouraged", "internal")


def test_unknown_architecture_says_what_to_do(tmp_path):
    path = tmp_path / "mystery.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, str(path))
    with pytest.raises(ValueError, match="not one fastsr knows.*does not know it either.*ONNX"):
        load(path)


class _Hostile:
    def __reduce__(self):
        return (sys.exit, (99,))


def test_hostile_pickle_never_executes(tmp_path):
    path = tmp_path / "hostile.pth"
    with open(path, "wb") as file:
        pickle.dump({"conv.weight": _Hostile()}, file)
    with pytest.raises(ValueError, match="not a loadable state_dict"):
        load(path)


def test_whole_pickled_module_says_to_save_the_state_dict(tmp_path):
    path = tmp_path / "whole.pth"
    torch.save(build("compact_prelu_x2"), str(path))
    with pytest.raises(ValueError, match="state_dict"):
        load(path)


def test_torchvision_stand_in_does_not_stay_behind():
    assert "spandrel" in sys.modules
    vision = sys.modules.get("torchvision")
    assert vision is None or hasattr(vision, "__file__")  # the real one, if any


@pytest.mark.parametrize(("name", "says"), [
    ("span_x4", "runs on: fastsr kernels"),
    ("esrgan_x2_unshuffle", "fastsr pads the frame, reflect then replicate, output cropped"),
    ("swinir_x2", "runs on: PyTorch (fallback), because torch.fx could not trace SwinIR"),
])
def test_info_says_which_path_a_model_takes(name, says, tmp_path, capsys):
    from fastsr import cli

    path = tmp_path / f"{name}.pth"
    _save(build(name), path)
    assert cli.main(["info", str(path)]) == 0
    assert says in capsys.readouterr().out


@pytest.mark.parametrize("name", ["rcan_x2", "swinir_x2"])
def test_neither_path_writes_the_callers_image(name, tmp_path):
    path = tmp_path / f"{name}.pth"  # RCAN's forward scales its input tensor in place
    _save(build(name), path)
    image = _image(12, 13, 3)
    before = image.copy()
    first, _ = _upscale(path, image)
    second, _ = _upscale(path, image)
    np.testing.assert_array_equal(image, before)
    np.testing.assert_array_equal(first, second)


@pytest.mark.skipif(importlib.util.find_spec("spandrel_extra_arches") is None,
                    reason="spandrel_extra_arches is not installed")
def test_extra_arches_load_when_installed(tmp_path):
    from spandrel_extra_arches.architectures.SRFormer import SRFormer

    torch.manual_seed(0)
    module = SRFormer(img_size=16, embed_dim=12, depths=(2,), num_heads=(2,), window_size=8,
                      mlp_ratio=2, upscale=2, upsampler="pixelshuffle").eval()
    path = tmp_path / "srformer.pth"
    _save(module, path)
    assert load(path).meta["architecture"] == "SRFormer"
    image = _image(19, 22, 3)
    got, messages = _upscale(path, image)
    np.testing.assert_allclose(got, _eager(module, image), atol=2e-5)
    assert len(messages) == 1 and "SRFormer runs in PyTorch" in messages[0]

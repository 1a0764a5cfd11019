"""fastsr.upscale and fastsr.Upscaler: kinds, dtypes, layouts, colour, errors, streams."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from test_color import rgb_reference, ycbcr_reference

import fastsr
from fastsr import api
from fastsr.backends import backend_status
from fastsr.graph.from_torch import capture


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny convs on a shared 2-core machine: torch's thread pool only adds waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TinySR(nn.Module):
    """conv -> relu -> conv -> pixel shuffle, plus a bicubic skip: a miniature SR net."""

    def __init__(self, channels: int = 3, scale: int = 2, features: int = 6, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.head = nn.Conv2d(channels, features, 3, padding=1)
        self.tail = nn.Conv2d(features, channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        self.scale = scale

    def forward(self, x):
        skip = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return self.shuffle(self.tail(torch.relu(self.head(x)))) * 0.1 + skip


def tiny_graph(channels: int = 3, scale: int = 2, module: nn.Module | None = None):
    module = module or TinySR(channels, scale)
    color = "rgb" if channels == 3 else "y"
    return capture(module.eval(), channels, {"scale": scale, "color": color})


def eager(module: nn.Module, nhwc: np.ndarray, clamp: bool = True) -> np.ndarray:
    """The module run by eager PyTorch on float NHWC input: the independent reference."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(nhwc, dtype=np.float32)).permute(0, 3, 1, 2)
        y = module(x).permute(0, 2, 3, 1)
        return (y.clamp(0, 1) if clamp else y).numpy()


@pytest.fixture(scope="module")
def rgb_module():
    return TinySR(3, 2).eval()


@pytest.fixture(scope="module")
def up(rgb_module):
    return fastsr.Upscaler(model=tiny_graph(module=rgb_module), backend="reference")


def random_image(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "u":
        return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)
    return rng.random(shape).astype(dtype)


def as_unit(image: np.ndarray) -> np.ndarray:
    full = np.iinfo(image.dtype).max if image.dtype.kind == "u" else 1
    return image.astype(np.float64) / full


# -- numpy ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float16, np.float64])
def test_rgb_array_matches_eager_torch_in_its_own_dtype(up, rgb_module, dtype):
    image = random_image((9, 11, 3), dtype)
    out = up(image)
    assert out.dtype == dtype and out.shape == (18, 22, 3)
    expected = eager(rgb_module, as_unit(image)[None])[0]
    if np.dtype(dtype).kind == "u":
        full = np.iinfo(dtype).max
        assert np.abs(out.astype(np.int64) - np.round(expected * full)).max() <= 1
    else:
        tolerance = 1e-3 if dtype == np.float16 else 1e-5
        np.testing.assert_allclose(out.astype(np.float64), expected, atol=tolerance)


def test_batch_of_frames_matches_frame_by_frame(up):
    frames = random_image((3, 8, 10, 3), np.uint8)
    out = up(frames)
    assert out.shape == (3, 16, 20, 3)
    for frame, result in zip(frames, out, strict=True):
        assert np.abs(up(frame).astype(int) - result).max() <= 1  # batched convs round apart


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[:, ::-1],  # mirrored: negative stride
        lambda a: a[..., ::-1],  # an OpenCV BGR view of RGB data
        lambda a: a[::2, 1::2],  # strided
        lambda a: np.asfortranarray(a),
        lambda a: a.astype(a.dtype.newbyteorder(">")),  # big-endian
    ],
    ids=["mirrored", "bgr_view", "strided", "fortran", "big_endian"],
)
def test_non_contiguous_arrays_equal_their_contiguous_copy(up, view):
    image = view(random_image((12, 14, 3), np.uint16))
    out = up(image)
    np.testing.assert_array_equal(out, up(np.ascontiguousarray(image).astype(np.uint16)))
    assert out.dtype == np.uint16


def test_float_output_stays_in_unit_range(up):
    image = np.zeros((6, 6, 3), np.float32)
    image[::2, ::2] = 1.0  # a checkerboard makes bicubic overshoot
    out = up(image)
    assert out.min() >= 0 and out.max() <= 1


def test_integer_output_uses_the_full_range(up):
    image = np.full((6, 7, 3), 65535, np.uint16)
    image[:, :3] = 0
    out = up(image)
    assert out.max() == 65535 and out.min() == 0


# -- grey, alpha, colour ----------------------------------------------------------------


def test_grey_is_the_mean_of_the_model_on_r_equals_g_equals_b(up, rgb_module):
    grey = random_image((7, 9), np.float32)
    out = up(grey)
    assert out.shape == (14, 18)
    rgb = np.repeat(grey[None, :, :, None], 3, axis=3)
    expected = eager(rgb_module, rgb, clamp=False)[0].mean(axis=2).clip(0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert up(grey[:, :, None]).shape == (14, 18, 1)


def test_opaque_alpha_is_carried_over_exactly(up):
    rgba = random_image((8, 8, 4), np.uint8)
    rgba[..., 3] = 255
    out = up(rgba)
    assert (out[..., 3] == 255).all()
    np.testing.assert_array_equal(out[..., :3], up(np.ascontiguousarray(rgba[..., :3])))


def test_varying_alpha_goes_through_the_model_as_grey(up):
    rgba = random_image((8, 10, 4), np.float32)
    out = up(rgba)
    np.testing.assert_allclose(out[..., 3], up(np.ascontiguousarray(rgba[..., 3])), atol=1e-6)
    np.testing.assert_allclose(out[..., :3], up(np.ascontiguousarray(rgba[..., :3])), atol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16])
def test_grey_with_alpha(up, dtype):
    la = random_image((5, 6, 2), dtype)
    out = up(la)
    assert out.shape == (10, 12, 2) and out.dtype == dtype
    la[..., 1] = la[0, 0, 1]
    assert (up(la)[..., 1] == la[0, 0, 1]).all()


def test_y_model_runs_on_luma_with_bicubic_chroma():
    module = TinySR(1, 2).eval()
    up = fastsr.Upscaler(model=tiny_graph(1, 2, module), backend="reference")
    assert up.color == "y"
    rgb = random_image((6, 8, 3), np.float32)
    ycbcr = ycbcr_reference(rgb.astype(np.float64))
    y = eager(module, ycbcr[None, ..., :1])[0]
    chroma = torch.from_numpy(ycbcr[..., 1:]).permute(2, 0, 1)[None]
    chroma = F.interpolate(chroma, scale_factor=2, mode="bicubic", align_corners=False)
    chroma = chroma.clamp(0, 1)[0].permute(1, 2, 0).numpy()
    expected = np.clip(rgb_reference(np.concatenate([y, chroma], axis=-1)), 0, 1)
    np.testing.assert_allclose(up(rgb), expected, atol=2e-5)


def test_y_model_keeps_grey_grey():
    up = fastsr.Upscaler(model=tiny_graph(1, 2), backend="reference")
    grey = random_image((6, 8), np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    out = up(rgb)
    assert np.abs(out.astype(int) - out[..., :1]).max() <= 1  # no colour cast
    assert np.abs(up(grey).astype(int) - out[..., 0]).max() <= 1


# -- Pillow and torch -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16"])
def test_pil_image_comes_back_in_its_mode(up, mode):
    channels = {"L": None, "LA": 2, "RGB": 3, "RGBA": 4, "I;16": None}[mode]
    dtype = np.uint16 if mode == "I;16" else np.uint8
    shape = (7, 5) if channels is None else (7, 5, channels)
    array = random_image(shape, dtype)
    image = Image.fromarray(array)
    assert image.mode == mode
    out = up(image)
    assert isinstance(out, Image.Image) and out.mode == mode and out.size == (10, 14)
    np.testing.assert_array_equal(np.asarray(out), up(array))


def test_palette_image_comes_back_as_rgb(up):
    image = Image.fromarray(random_image((6, 6, 3), np.uint8)).convert("P")
    out = up(image)
    assert out.mode == "RGB" and out.size == (12, 12)


def test_unsupported_pil_mode_is_a_clear_error(up):
    with pytest.raises(ValueError, match="mode CMYK"):
        up(Image.new("CMYK", (4, 4)))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float16, torch.uint16])
def test_torch_chw_and_nchw_keep_layout_and_dtype(up, dtype):
    hwc = random_image((2, 6, 7, 3), np.float32)
    if dtype == torch.uint8:
        tensor = torch.from_numpy((hwc * 255).round().astype(np.uint8))
    elif dtype == torch.uint16:
        tensor = torch.from_numpy((hwc * 65535).round().astype(np.int32)).to(torch.uint16)
    else:
        tensor = torch.from_numpy(hwc).to(dtype)
    nchw = tensor.permute(0, 3, 1, 2)  # a non-contiguous view, as many pipelines have
    out = up(nchw)
    assert out.dtype == dtype and out.shape == (2, 3, 12, 14) and out.is_contiguous()
    single = up(nchw[1])
    assert single.shape == (3, 12, 14)
    # batch and single runs may pick different conv algorithms: equal up to rounding
    assert (single.to(torch.float64) - out[1].to(torch.float64)).abs().max() <= (
        1 if dtype in (torch.uint8, torch.uint16) else 1e-6
    )
    np.testing.assert_array_equal(
        out.permute(0, 2, 3, 1).to(torch.float32).numpy(),
        up(
            tensor.numpy()
            if dtype != torch.uint16
            else tensor.to(torch.int32).numpy().astype(np.uint16)
        ).astype(np.float32),
    )


def test_tensor_requiring_grad_is_accepted(up):
    x = torch.rand(3, 5, 5, requires_grad=True)
    assert up(x).shape == (3, 10, 10)


# -- the Upscaler -----------------------------------------------------------------------


class CountingCompiles:
    """Wraps a backend's compile to count the plans it builds."""

    def __init__(self, monkeypatch, backend):
        self.sizes = []
        original = backend.compile

        def compile(graph, plan, *args):
            self.sizes.append((plan.batch, plan.height, plan.width))
            return original(graph, plan, *args)

        monkeypatch.setattr(backend, "compile", compile)


def test_upscaler_replans_only_when_the_frame_size_changes(monkeypatch):
    up = fastsr.Upscaler(model=tiny_graph(), backend="reference")
    counter = CountingCompiles(monkeypatch, up._engine("reference").backend)
    small, big = random_image((6, 6, 3), np.uint8), random_image((8, 6, 3), np.uint8)
    for frame in [small, small, small, big, big, small]:
        up(frame)
    assert counter.sizes == [(1, 6, 6), (1, 8, 6), (1, 6, 6)]


def test_stream_is_a_lazy_generator(up):
    seen = []

    def frames():
        for i in range(4):
            seen.append(i)
            yield random_image((5, 5, 3), np.uint8, seed=i)

    results = up.stream(frames())
    assert seen == []
    first = next(results)
    assert seen == [0] and first.shape == (10, 10, 3)
    assert len(list(results)) == 3


def test_calls_from_several_threads_give_the_sequential_results(up):
    frames = [random_image((6 + i % 3, 7, 3), np.uint8, seed=i) for i in range(12)]
    expected = [up(frame) for frame in frames]
    results: dict[int, np.ndarray] = {}

    def work(indices):
        for i in indices:
            results[i] = up(frames[i])

    threads = [threading.Thread(target=work, args=(range(k, 12, 4),)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, frame_result in enumerate(expected):
        np.testing.assert_array_equal(results[i], frame_result)


def test_upscale_function_takes_a_graph_and_matches_the_upscaler(up, rgb_module):
    image = random_image((5, 6, 3), np.uint8)
    out = fastsr.upscale(image, model=tiny_graph(module=rgb_module), backend="reference")
    np.testing.assert_array_equal(out, up(image))


def test_auto_backend_is_cpu_when_available_else_reference_with_a_warning(monkeypatch):
    expected = "cpu" if backend_status()["cpu"] is None else "reference"
    api._warn_reference.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert api.resolve_backend("auto", torch.device("cpu")) == expected
        api.resolve_backend("auto", torch.device("cpu"))
    messages = [str(w.message) for w in caught if "reference backend" in str(w.message)]
    assert len(messages) == (0 if expected == "cpu" else 1)  # said once, with the reason
    assert api.resolve_backend("reference", torch.device("cpu")) == "reference"


@pytest.mark.skipif(backend_status()["cpu"] is not None, reason="cpu backend not built here")
def test_cpu_backend_matches_reference(rgb_module):
    image = random_image((2, 9, 13, 3), np.float32)
    graph = tiny_graph(module=rgb_module)
    fast = fastsr.Upscaler(model=graph, backend="cpu", threads=2)(image)
    reference = fastsr.Upscaler(model=graph, backend="reference")(image)
    np.testing.assert_allclose(fast, reference, atol=1e-4)


@pytest.mark.skipif(backend_status()["triton"] is not None, reason="triton not usable here")
def test_triton_backend_matches_reference(rgb_module):
    """On CUDA tensors when there is a GPU, else in Triton's interpreter (TRITON_INTERPRET=1)."""
    image = random_image((6, 7, 4), np.float32)
    graph = tiny_graph(module=rgb_module)
    fast = fastsr.Upscaler(model=graph, backend="triton")(image)
    reference = fastsr.Upscaler(model=graph, backend="reference")(image)
    np.testing.assert_allclose(fast, reference, atol=1e-4)


def test_torch_module_as_model(rgb_module):
    image = random_image((6, 7, 3), np.float32)
    out = fastsr.upscale(image, model=rgb_module, backend="reference")
    np.testing.assert_allclose(out, eager(rgb_module, image[None])[0], atol=1e-5)


def _shipped_names() -> list:
    from fastsr.graph import shipped_models

    names = [m["name"] for m in shipped_models()]
    reason = "no shipped weights in fastsr/weights yet (they are being trained)"
    return names or [pytest.param(None, marks=pytest.mark.skip(reason=reason))]


@pytest.mark.parametrize("name", _shipped_names())
def test_shipped_model_end_to_end_beats_bicubic(name):
    """A real photo through a shipped model: the whole colour path agrees with training."""
    from fastsr.data import degrade, imresize, load_rgb
    from fastsr.evaluate import default_data_dir
    from fastsr.metrics import psnr_y

    photo = default_data_dir() / "Set5" / "bird.png"
    if not photo.is_file():
        pytest.skip(f"validation image {photo} not present")
    up = fastsr.Upscaler(model=name)
    lr, hr = degrade(load_rgb(photo), up.scale)
    sr = up(lr)
    assert sr.shape == hr.shape and sr.dtype == np.uint8
    bicubic = psnr_y(imresize(lr, up.scale), hr, up.scale)
    assert psnr_y(sr, hr, up.scale) > bicubic + 1.0
    crop = np.ascontiguousarray(lr[:24, :32])
    reference = fastsr.Upscaler(model=name, backend="reference")(crop)
    assert np.abs(up(crop).astype(int) - reference).max() <= 1


# -- bad input --------------------------------------------------------------------------

BAD_IMAGES = [
    (np.zeros((4, 4, 5), np.uint8), ValueError, "channels"),
    (np.zeros((4,), np.uint8), ValueError, "H x W"),
    (np.zeros((1, 2, 4, 4, 3), np.uint8), ValueError, "shape"),
    (np.zeros((4, 4, 3), np.int32), TypeError, "int32"),
    (np.zeros((4, 4, 3), bool), TypeError, "bool"),
    (np.zeros((4, 4, 3), np.complex64), TypeError, "complex64"),
    (np.zeros((0, 4, 3), np.uint8), ValueError, "non-empty"),
    (np.zeros((0, 4, 4, 3), np.uint8), ValueError, "non-empty"),
    (np.full((4, 4, 3), np.nan, np.float32), ValueError, "NaN"),
    (np.full((4, 4), np.inf, np.float16), ValueError, "infinity"),
    (np.full((4, 4, 3), 255.0, np.float32), ValueError, r"\[0, 1\]"),
    (np.full((4, 4, 3), -0.5, np.float32), ValueError, r"\[0, 1\]"),
    (torch.zeros(5, 4, 4), ValueError, "channels"),
    (torch.zeros(4, 4), ValueError, "C x H x W"),
    (torch.zeros(3, 4, 4, dtype=torch.int64), TypeError, "int64"),
    ([[0, 1], [1, 0]], TypeError, "list"),
    ("image.png", TypeError, "str"),
]


@pytest.mark.parametrize(("image", "error", "message"), BAD_IMAGES)
def test_bad_images_raise_clear_errors(up, image, error, message):
    with pytest.raises(error, match=message):
        up(image)


def test_scale_the_model_does_not_have():
    with pytest.raises(ValueError, match="upscales by 2, not by the requested 3"):
        fastsr.Upscaler(model=tiny_graph(), scale=3, backend="reference")


@pytest.mark.parametrize("scale", [0, -2, 2.5, "2", True])
def test_invalid_scale_values(scale):
    with pytest.raises(ValueError, match="scale must be"):
        fastsr.Upscaler(model=tiny_graph(), scale=scale, backend="reference")


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        fastsr.Upscaler(model=tiny_graph(), backend="gpu")


@pytest.mark.parametrize(("option", "value"), [("threads", 0), ("tile", -1), ("max_memory", 0)])
def test_invalid_options(option, value):
    with pytest.raises(ValueError, match=option):
        fastsr.Upscaler(model=tiny_graph(), backend="reference", **{option: value})


def test_missing_weight_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.safetensors"):
        fastsr.upscale(np.zeros((4, 4, 3), np.uint8), model=str(tmp_path / "nothere.safetensors"))
    with pytest.raises(FileNotFoundError, match="weights.pth"):
        fastsr.Upscaler(model=tmp_path / "weights.pth")


def test_model_of_the_wrong_type():
    with pytest.raises(TypeError, match="got int"):
        fastsr.Upscaler(model=42)


def test_model_with_unsupported_channels():
    graph = capture(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1)), 2)
    with pytest.raises(ValueError, match="2 channels in"):
        fastsr.Upscaler(model=graph, backend="reference")


def test_unknown_model_name():
    with pytest.raises(ValueError, match="no-such-model"):
        fastsr.Upscaler(model="no-such-model")


def test_upscale_function_checks_unhashable_options():
    with pytest.raises(ValueError, match="scale must be"):
        fastsr.upscale(np.zeros((4, 4, 3), np.uint8), scale=[2], model=tiny_graph())
    with pytest.raises(ValueError, match="unknown backend"):
        fastsr.upscale(np.zeros((4, 4, 3), np.uint8), backend=["cpu"])

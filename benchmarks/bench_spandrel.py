"""spandrel architectures: fastsr (kernels, or the PyTorch fallback) against eager
PyTorch running spandrel's module and, for the cases on fastsr's kernels, against ONNX
Runtime and OpenVINO (fp32) running its ONNX export when they are installed; same weights,
same run, each output checked against eager first.

Full mode (--benchmark-only) runs Compact and SPAN at their published sizes at
FASTSR_SPANDREL_SIZE (default 480x270), the sweep (FASTSR_BENCH_SWEEP=1) every network;
plain `pytest` runs tiny models once. The README's table comes from
`FASTSR_BENCH_SWEEP=1 pytest benchmarks/bench_spandrel.py --benchmark-only`.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from spandrel_cases import SPANDREL_CASES, build  # noqa: E402

import fastsr  # noqa: E402
from benchmarks import sweep  # noqa: E402
from benchmarks.peers import module_onnx_bytes, onnxruntime_run, openvino_run  # noqa: E402
from benchmarks.quantized_peers import unavailable  # noqa: E402
from fastsr.graph.from_spandrel import import_spandrel, needs_torch  # noqa: E402

# runner -> (the peer that says whether it is installed, how it runs an ONNX model)
ONNX_PEERS = {
    "onnxruntime": ("onnxruntime_int8", onnxruntime_run),
    "openvino": ("openvino_fp32", openvino_run),
}


def _full_size_models():
    import_spandrel()
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.RCAN import RCAN
    from spandrel.architectures.SPAN import SPAN
    from spandrel.architectures.SwinIR import SwinIR

    return {  # realesr-general-x4v3 / animevideov3 shapes, RealESRGAN_x4plus, SPAN x4, SwinIR light
        "compact_64x16_x4": lambda: Compact(num_feat=64, num_conv=16, upscale=4,
                                            act_type="prelu"),
        "rrdb_64x23_x4": lambda: ESRGAN(num_filters=64, num_blocks=23, scale=4),
        # RealESRGAN_x2plus: the x4 trunk behind a pixel-unshuffle by 2
        "rrdb_64x23_x2_unshuffle": lambda: ESRGAN(in_nc=12, num_filters=64, num_blocks=23,
                                                  scale=4, shuffle_factor=2),
        # RCAN's published 10 groups x 20 blocks is ~20x this; the blocks are the same
        "rcan_64_2x4_x2": lambda: RCAN(n_resgroups=2, n_resblocks=4, n_feats=64, scale=2),
        "span_48_x4": lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=4),
        "swinir_light_x2": lambda: SwinIR(upscale=2, img_size=64, window_size=8,
                                          embed_dim=60, depths=[6, 6, 6, 6],
                                          num_heads=[6, 6, 6, 6], mlp_ratio=2,
                                          upsampler="pixelshuffledirect"),
    }


# The full run's networks; the sweep adds RRDB (minutes a call in eager PyTorch), RCAN and
# the SwinIR fallback.
FULL_RUN = ("compact_64x16_x4", "span_48_x4")


def _cases(quick: bool):
    if quick:
        return {name: (lambda name=name: build(name)) for name in SPANDREL_CASES}
    models = _full_size_models()
    return models if sweep() else {name: models[name] for name in FULL_RUN}


def pytest_generate_tests(metafunc):
    if "spandrel_case" in metafunc.fixturenames:
        quick = not metafunc.config.getoption("benchmark_only", False)
        names = sorted(_cases(quick))
        pairs = [(n, r) for n in names for r in ("fastsr", "eager", *ONNX_PEERS)]
        metafunc.parametrize(("spandrel_case", "runner"), pairs,
                             ids=[f"{n}-{r}" for n, r in pairs])


def _size(quick: bool) -> tuple[int, int]:
    if quick:
        return 24, 20
    w, h = os.environ.get("FASTSR_SPANDREL_SIZE", "480x270").split("x")
    return int(w), int(h)


def test_spandrel_speed(benchmark, timed, quick, threads, spandrel_case, runner, tmp_path):
    spandrel = import_spandrel()
    torch.manual_seed(0)
    module = _cases(quick)[spandrel_case]().eval()
    path = tmp_path / f"{spandrel_case}.pth"
    torch.save(module.state_dict(), str(path))
    descriptor = spandrel.ModelLoader().load_from_file(str(path))
    descriptor.model.eval()
    w, h = _size(quick)
    channels = descriptor.input_channels  # a grey model gets a grey (2-D) image
    image = np.random.default_rng(0).random((h, w, channels), dtype=np.float32)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    with torch.inference_mode():
        expected = descriptor(x.clone()).clamp(0, 1)[0].permute(1, 2, 0).numpy()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        up = fastsr.Upscaler(model=str(path), threads=threads)
    on_kernels = not needs_torch(up.graph)
    if runner == "fastsr":
        def run(img):
            out = up(img)
            return out.reshape(*out.shape[:2], -1)
        arg = image if channels > 1 else image[..., 0]
    elif runner == "eager":
        def run(t):
            with torch.inference_mode():
                return descriptor(t.clone()).clamp(0, 1)[0].permute(1, 2, 0).numpy()
        arg = x
    else:
        run, arg = _onnx_peer(runner, descriptor.model, x, threads, on_kernels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        output = run(arg)  # warm-up: plans and packs; its time sizes the rounds
        first_seconds = time.perf_counter() - start
        max_err = float(np.abs(output - expected).max())
        benchmark.group = f"spandrel {spandrel_case} {w}x{h}"
        benchmark.extra_info.update(
            kind="spandrel", model=spandrel_case, runner=runner, width=w, height=h,
            threads=threads, max_err=max_err,
            path="kernels" if on_kernels else "torch",
        )
        assert max_err <= 1e-4, f"{runner} drifts from spandrel's eager module: {max_err:.3g}"
        timed(run, arg, first_seconds)


def _onnx_peer(runner: str, module: torch.nn.Module, x: torch.Tensor, threads: int,
               on_kernels: bool):
    """The timed call of an ONNX peer on the module exported at the bench's frame size."""
    if not on_kernels:
        pytest.skip("peers are timed only where fastsr runs its own kernels")
    peer, make = ONNX_PEERS[runner]
    reason = unavailable(peer)
    if reason:
        pytest.skip(reason)
    session = make(module_onnx_bytes(module, x.clone()), threads)  # forwards may scale x in place

    def run(nchw):
        return np.clip(session(nchw), 0, 1)[0].transpose(1, 2, 0)

    return run, x.contiguous().numpy()

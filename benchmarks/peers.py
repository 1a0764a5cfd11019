"""The engines a network is timed on, each behind one small interface, and the parity check.

A Runner takes the case's float32 NCHW frames through `feed` (untimed: each engine gets
its own layout), `run` is the timed call, and `fetch` turns the result back into float32
NCHW so every engine is compared with eager PyTorch on the same pixels.
"""

from __future__ import annotations

import inspect
import io
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import ModelCase, Network, case_input

# DESIGN.md: fp32 backends match within 1e-4 absolute on outputs in [0, 1]. Random-weight
# networks can leave that range, so the bound scales with the reference's magnitude.
PARITY_ABS_FP32 = 1e-4


@dataclass
class Runner:
    name: str
    feed: Callable[[torch.Tensor], Any]
    run: Callable[[Any], Any]
    fetch: Callable[[Any], torch.Tensor]


def parity_bound(reference: torch.Tensor) -> float:
    return PARITY_ABS_FP32 * max(1.0, float(reference.abs().max()))


def max_abs_error(output: torch.Tensor, reference: torch.Tensor) -> float:
    if output.shape != reference.shape:
        shapes = f"{tuple(output.shape)} != eager {tuple(reference.shape)}"
        raise AssertionError(f"output shape {shapes}")
    return float((output.float() - reference).abs().max())


@lru_cache(maxsize=1)
def eager_reference(network: Network, case: ModelCase) -> torch.Tensor:
    """Eager NCHW output of a case, kept while that case's runners run one after another."""
    x = case_input(case.batch, network.in_channels, case.height, case.width)
    with torch.inference_mode():
        return network.module(x)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous()


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def _backend_unavailable(backend: str) -> str | None:
    from fastsr.backends import backend_status

    reason = backend_status().get(backend, f"no backend '{backend}'")
    return None if reason is None else f"fastsr backend '{backend}' unavailable: {reason}"


def _triton_unavailable() -> str | None:
    if not torch.cuda.is_available():
        return "fastsr triton needs CUDA; none on this machine"
    return _backend_unavailable("triton")


def _onnxruntime_unavailable() -> str | None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnxruntime is not installed"
    return None


UNAVAILABLE: dict[str, Callable[[], str | None]] = {
    "fastsr_reference": lambda: _backend_unavailable("reference"),
    "fastsr_cpu": lambda: _backend_unavailable("cpu"),
    "fastsr_triton": _triton_unavailable,
    "torch_eager": lambda: None,
    "torch_channels_last": lambda: None,
    "onnxruntime": _onnxruntime_unavailable,
}


def unavailable(kind: str) -> str | None:
    """None when runner `kind` can run here, else why not."""
    if kind not in UNAVAILABLE:
        return f"unknown runner '{kind}', expected one of {sorted(UNAVAILABLE)}"
    return UNAVAILABLE[kind]()


@lru_cache(maxsize=4)
def fastsr_engine(network: Network, backend: str, threads: int):
    from fastsr.engine import Engine
    from fastsr.graph.from_torch import capture

    graph = capture(network.module, network.in_channels, {"name": network.spec.name})
    use_threads(backend, threads)
    if "threads" in inspect.signature(Engine).parameters:
        return Engine(graph, backend, threads=threads)
    return Engine(graph, backend)  # uses the process's thread count, set by conftest


def use_threads(backend: str, threads: int) -> None:
    """Thread count for the next runs. torch and fastsr._C share one OpenMP runtime (same
    libgomp soname), so torch's setting reaches the C++ backend too; a _C setter wins."""
    torch.set_num_threads(threads)
    if backend == "cpu":
        from fastsr import _C

        set_max_threads = getattr(_C, "set_max_threads", None)
        if set_max_threads is not None:
            set_max_threads(threads)


def _fastsr_runner(backend: str, device: str) -> Callable[[Network, int], Runner]:
    def make(network: Network, threads: int) -> Runner:
        engine = fastsr_engine(network, backend, threads)
        use_threads(backend, threads)  # again: the engine may be cached from another case

        def run(x):
            with torch.inference_mode():
                out = engine.run(x)
            if device == "cuda":
                torch.cuda.synchronize()
            return out

        return Runner(
            f"fastsr_{backend}", lambda x: _nhwc(x).to(device), run, lambda y: _nchw(y).cpu()
        )

    return make


def _eager_runner(channels_last: bool) -> Callable[[Network, int], Runner]:
    def make(network: Network, threads: int) -> Runner:
        layout = torch.channels_last if channels_last else torch.contiguous_format
        module = network.module
        if channels_last:  # a copy, so the shared module stays as trained (NCHW)
            module = _channels_last_copy(network)

        def run(x):
            with torch.inference_mode():
                return module(x)

        name = "torch_channels_last" if channels_last else "torch_eager"
        return Runner(name, lambda x: x.contiguous(memory_format=layout), run, lambda y: y)

    return make


@lru_cache(maxsize=2)
def _channels_last_copy(network: Network) -> torch.nn.Module:
    import copy

    return copy.deepcopy(network.module).to(memory_format=torch.channels_last)


def module_onnx_bytes(
    module: torch.nn.Module, example: torch.Tensor, dynamic_axes: dict | None = None
) -> bytes:
    """The TorchScript-based export (dynamo=False: no onnxscript needed, ~15x faster), input
    "lr" and output "sr"; without dynamic_axes the graph is fixed at the example's shape."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, on purpose here
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,
            input_names=["lr"],
            output_names=["sr"],
            dynamic_axes=dynamic_axes,
            opset_version=17,
        )
    return buffer.getvalue()


def onnx_bytes(network: Network) -> bytes:
    """Batch, height and width dynamic, so one export serves every case."""
    example = torch.rand(1, network.spec.in_channels, 16, 16)
    lr_axes = {0: "batch", 2: "height", 3: "width"}
    sr_axes = {0: "batch", 2: "sr_height", 3: "sr_width"}
    return module_onnx_bytes(network.module, example, {"lr": lr_axes, "sr": sr_axes})


def onnxruntime_options(threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def onnxruntime_run(onnx: bytes, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """float32 NCHW in and out through an ONNX Runtime CPU session of the model."""
    import onnxruntime as ort

    session = ort.InferenceSession(
        onnx, onnxruntime_options(threads), providers=["CPUExecutionProvider"]
    )
    return lambda x: session.run(["sr"], {"lr": x})[0]


@lru_cache(maxsize=2)
def onnxruntime_session(network: Network, threads: int):
    return onnxruntime_run(onnx_bytes(network), threads)


def openvino_run(
    onnx: bytes, threads: int, transform: Callable[[Any], Any] | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """float32 NCHW in and out through OpenVINO's CPU plugin; `transform` rewrites the read
    model (e.g. NNCF quantisation). One compiled model per input shape (a static shape runs
    faster than a dynamic one)."""
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    core = ov.Core()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "model.onnx")
        path.write_bytes(onnx)
        model = core.read_model(str(path))
    if transform is not None:
        model = transform(model)
    # f32 for every layer it runs in float: on a CPU with bf16 (AVX512_BF16, AMX)
    # OpenVINO would otherwise run them in bf16.
    config = {
        props.inference_num_threads: threads,
        hints.inference_precision: ov.Type.f32,
        hints.performance_mode: hints.PerformanceMode.LATENCY,
    }
    compiled = {}

    def run(x: np.ndarray) -> np.ndarray:
        if x.shape not in compiled:
            shaped = model.clone()
            shaped.reshape(list(x.shape))
            compiled[x.shape] = core.compile_model(shaped, "CPU", config)
        return compiled[x.shape]([x])[0]

    return run


def _onnxruntime_runner(network: Network, threads: int) -> Runner:
    return Runner(
        "onnxruntime",
        lambda x: x.contiguous().numpy(),
        onnxruntime_session(network, threads),
        torch.from_numpy,
    )


MAKERS: dict[str, Callable[[Network, int], Runner]] = {
    "fastsr_reference": _fastsr_runner("reference", "cpu"),
    "fastsr_cpu": _fastsr_runner("cpu", "cpu"),
    "fastsr_triton": _fastsr_runner("triton", "cuda"),
    "torch_eager": _eager_runner(channels_last=False),
    "torch_channels_last": _eager_runner(channels_last=True),
    "onnxruntime": _onnxruntime_runner,
}


def make_runner(kind: str, network: Network, threads: int) -> Runner:
    return MAKERS[kind](network, threads)

"""Other engines' reduced precision beside fastsr's, each used when installed: ONNX Runtime
int8 (static QDQ, per-channel, u8 activations x s8 weights), OpenVINO fp32 and OpenVINO
int8 (NNCF post-training quantisation).

The int8 peers calibrate on the images fastsr's shipped scales come from
(fastsr.quantize.calibration_inputs over CALIBRATION_DIR: the same 16 LR crops), and every
engine's quality is Set5 Y-PSNR through the same colour stage as fastsr's torch backends.
A peer is a function of float32 NCHW arrays of any size.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks import Network
from benchmarks.peers import onnx_bytes, onnxruntime_options
from fastsr.graph.ir import Graph
from fastsr.quantize import CALIBRATION_DIR, calibration_inputs

Peer = Callable[[np.ndarray], np.ndarray]

# peer -> (engine, precision, packages it needs)
PEERS = {
    "onnxruntime_int8": ("onnxruntime", "int8", ("onnxruntime", "onnx")),
    "openvino_fp32": ("openvino", "fp32", ("openvino",)),
    "openvino_int8": ("openvino", "int8", ("openvino", "nncf")),
}


def unavailable(peer: str) -> str | None:
    """None when `peer` can run here, else why not."""
    missing = [name for name in PEERS[peer][2] if importlib.util.find_spec(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed (pip install -e '.[bench]')"
    return None


def calibration_nchw(graph: Graph) -> list[np.ndarray]:
    inputs = calibration_inputs(CALIBRATION_DIR, int(graph.meta["scale"]), graph.input_channels)
    return [np.ascontiguousarray(x.transpose(0, 3, 1, 2)) for x in inputs]


def _onnxruntime_int8(network: Network, graph: Graph, threads: int) -> Peer:
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.inputs = iter(calibration_nchw(graph))

        def get_next(self):
            x = next(self.inputs, None)
            return None if x is None else {"lr": x}

    with tempfile.TemporaryDirectory() as folder:
        fp32, int8 = Path(folder, "fp32.onnx"), Path(folder, "int8.onnx")
        fp32.write_bytes(onnx_bytes(network))
        quantize_static(
            str(fp32),
            str(int8),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        session = ort.InferenceSession(
            str(int8), onnxruntime_options(threads), providers=["CPUExecutionProvider"]
        )
    return lambda x: session.run(["sr"], {"lr": x})[0]


def _openvino(network: Network, graph: Graph, threads: int, int8: bool) -> Peer:
    """One compiled model per input shape (a static shape runs faster than a dynamic one)."""
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    core = ov.Core()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "model.onnx")
        path.write_bytes(onnx_bytes(network))
        model = core.read_model(str(path))
    if int8:
        import nncf

        model = nncf.quantize(model, nncf.Dataset(calibration_nchw(graph)))
    # f32 for the layers it does not quantise: on a CPU with bf16 (AVX512_BF16, AMX)
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


MAKERS: dict[str, Callable[[Network, Graph, int], Peer]] = {
    "onnxruntime_int8": _onnxruntime_int8,
    "openvino_fp32": lambda network, graph, threads: _openvino(network, graph, threads, False),
    "openvino_int8": lambda network, graph, threads: _openvino(network, graph, threads, True),
}


def make_peer(peer: str, network: Network, graph: Graph, threads: int) -> Peer:
    return MAKERS[peer](network, graph, threads)


def set5_psnr(upscale: Callable[[np.ndarray], np.ndarray], scale: int) -> float:
    """Y-PSNR on Set5 of uint8 RGB LR -> uint8 RGB SR, by fastsr's evaluation protocol."""
    from fastsr.evaluate import default_data_dir, evaluate

    result = evaluate(upscale, default_data_dir(), scale, datasets=["Set5"], bicubic=False)
    return result["Set5"]["model"]["psnr"]


def peer_upscaler(graph: Graph, run_nchw: Peer) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 RGB in and out through a peer, colour handled as fastsr's torch backends do."""
    import torch

    from fastsr.backends.torch_image import TorchCompiled

    def run_nhwc(x: torch.Tensor) -> torch.Tensor:
        y = run_nchw(np.ascontiguousarray(x.permute(0, 3, 1, 2).numpy()))
        return torch.from_numpy(np.asarray(y)).permute(0, 2, 3, 1)

    compiled = TorchCompiled(run_nhwc, graph, torch.device("cpu"), 0)
    scale = int(graph.meta["scale"])

    def upscale(lr: np.ndarray) -> np.ndarray:
        out = np.empty((1, lr.shape[0] * scale, lr.shape[1] * scale, 3), np.uint8)
        compiled.run_image(lr[None], out)
        return out[0]

    return upscale

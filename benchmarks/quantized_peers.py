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
from benchmarks.peers import onnx_bytes, onnxruntime_run, openvino_run
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
        return onnxruntime_run(int8.read_bytes(), threads)


def _openvino(network: Network, graph: Graph, threads: int, int8: bool) -> Peer:
    def quantize(model):
        import nncf

        return nncf.quantize(model, nncf.Dataset(calibration_nchw(graph)))

    return openvino_run(onnx_bytes(network), threads, quantize if int8 else None)


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

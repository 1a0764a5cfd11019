"""Post-training int8: per-channel weight scales, activation scales from calibration images.

A calibrated graph carries `meta["int8"]`:
  layers       conv outputs whose conv runs in int8 (the others stay fp32)
  activations  tensor -> [scale, zero point] of every tensor an int8 conv reads (u8,
               asymmetric: real = scale * (q - zero)); the conv writes such a tensor
               straight as u8 when only int8 convs read it
  estimator    how the ranges were chosen, calibration: what they were chosen on
Weights are quantised when the backend compiles the graph (`quantize_weight`), so the
graph keeps its fp32 parameters and runs at either precision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastsr.graph.ir import Graph

INT8_WEIGHT_MAX = 63  # 7-bit weights: see csrc/conv2d_int8.h (AVX2's saturating int16 pairs)
ESTIMATORS = ("max", "percentile", "mse")
PERCENTILE = 99.99
CROP = 96
TAP_ESTIMATOR = "mse"  # of the int8 Winograd taps: 0.027 dB of Set5 on quality_x2, max 0.037


AUTO_BUDGET_DB = 0.1  # the Set5 PSNR an automatic choice may give up for speed
# The lower precisions whose Set5 cost shipped models record; the backend orders them by
# speed on the model (faster_precisions, fastest first: on AMX bf16 leads on the fast
# models and int8 on the quality ones; elsewhere int8 leads, README precision).
AUTO_ORDER = ("int8", "bf16")


def auto_precision(graph: Graph, backend) -> str:
    """The fastest of AUTO_ORDER that the backend runs faster than fp32 here and whose
    measured Set5 PSNR cost on this model (meta[precision]["psnr_cost_db"]) is within
    AUTO_BUDGET_DB; fp32 when none is."""
    for precision in backend.faster_precisions(graph):
        cost = graph.meta.get(precision, {}).get("psnr_cost_db")
        if precision in AUTO_ORDER and cost is not None and cost <= AUTO_BUDGET_DB:
            return precision
    return "fp32"


def quantize_weight(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OIHW float -> (int8 OIHW with |q| <= INT8_WEIGHT_MAX, float32 scale per channel)."""
    peak = np.abs(weight).reshape(weight.shape[0], -1).max(axis=1)
    scale = np.where(peak > 0, peak / INT8_WEIGHT_MAX, 1.0).astype(np.float32)
    q = np.rint(weight / scale.reshape(-1, 1, 1, 1))
    return np.clip(q, -INT8_WEIGHT_MAX, INT8_WEIGHT_MAX).astype(np.int8), scale


def scale_and_zero(lo: float, hi: float) -> tuple[float, int]:
    """u8 parameters covering [lo, hi] (widened to hold 0, so zero padding is exact)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / 255 if hi > lo else 1.0
    return scale, int(np.clip(np.rint(-lo / scale), 0, 255))


def _mse_range(values: np.ndarray) -> tuple[float, float]:
    """The clipping range, among shrinkings of [min, max], with the least u8 round-trip MSE."""
    sample = values[:: max(1, values.size // 200_000)]
    lo, hi = float(values.min()), float(values.max())
    best, best_err = (lo, hi), np.inf
    for shrink in np.linspace(1.0, 0.3, 36):
        scale, zero = scale_and_zero(lo * shrink, hi * shrink)
        q = np.clip(np.rint(sample / scale) + zero, 0, 255)
        err = float(np.mean((scale * (q - zero) - sample) ** 2))
        if err < best_err:
            best, best_err = (lo * shrink, hi * shrink), err
    return best


def value_range(values: np.ndarray, estimator: str) -> tuple[float, float]:
    if estimator == "max":
        return float(values.min()), float(values.max())
    if estimator == "percentile":
        lo, hi = np.percentile(values, [100 - PERCENTILE, PERCENTILE])
        return float(lo), float(hi)
    if estimator == "mse":
        return _mse_range(values)
    raise ValueError(f"unknown estimator {estimator!r}, expected one of {', '.join(ESTIMATORS)}")


def default_int8_layers(graph: Graph) -> list[str]:
    """Convs to run in int8: all but a conv reading the image (1-3 channels: little work,
    and its input is the image itself). The conv writing the output image is one: on the
    shipped models it cost 0.007-0.013 dB more of Set5 and saved 8-18 % of the int8 frame
    (docs/BENCHMARKS.md, precisions). Nor a conv whose epilogue the int8 kernels lack
    (`narrow_kernels_take`)."""
    from fastsr.backends.cpu_narrow import narrow_kernels_take

    first = {n.output for n in graph.nodes if n.inputs[0] == graph.input}
    return [
        n.output
        for n in graph.nodes
        if n.op in ("conv2d", "conv_transpose2d")
        and n.output not in first
        and narrow_kernels_take(n)
    ]


def runs_int8_winograd(graph: Graph, node) -> bool:
    """Whether an int8 `node` has the shape of csrc's int8 Winograd (its calibration then
    records the taps' scales of its input; the backend decides whether it runs it)."""
    from fastsr import _C

    a = node.attrs
    if node.op != "conv2d" or a["groups"] != 1 or len(set(a["dilation"])) != 1:
        return False
    cout, cin, kh, kw = graph.params[a["weight"]].shape
    if tuple(a["stride"]) != (1, 1):
        return False
    return bool(_C.int8_winograd_fits(cin, cout, kh, kw, 1, a["dilation"][0], a["padding"][0],
                                      a["padding"][1], node.epilogue("pixel_shuffle")))


def _prefix(graph: Graph, tensor: str) -> Graph:
    """The part of `graph` that computes `tensor`, as a graph with that output."""
    nodes = []
    for node in graph.nodes:
        nodes.append(node)
        if node.output == tensor:
            break
    meta = {k: v for k, v in graph.meta.items() if k != "color"}
    return Graph(graph.input, graph.input_channels, tensor, nodes, graph.params, meta)


def calibration_inputs(
    folder: str | Path, scale: int, channels: int, count: int = 16, crop: int = CROP, seed: int = 0
) -> list[np.ndarray]:
    """`count` model inputs (1 x crop x crop x C float32): random crops of the LR images
    (bicubic-downscaled by the model's scale) of the images under `folder`."""
    from fastsr.color import RGB_TO_YCBCR, YCBCR_OFFSET
    from fastsr.data import degrade, image_paths, load_rgb

    paths = image_paths(folder)
    if not paths:
        raise ValueError(f"no .png or .bmp calibration images under {folder}")
    rng = np.random.default_rng(seed)
    inputs = []
    for path in rng.permutation(np.array(paths, dtype=object))[:count]:
        lr, _ = degrade(load_rgb(path), scale)
        h, w = lr.shape[:2]
        top, left = rng.integers(0, max(1, h - crop + 1)), rng.integers(0, max(1, w - crop + 1))
        rgb = lr[top : top + crop, left : left + crop].astype(np.float32) / 255
        if channels == 1:
            rgb = (rgb @ RGB_TO_YCBCR[0] + YCBCR_OFFSET[0])[..., None]
        inputs.append(np.ascontiguousarray(rgb[None], dtype=np.float32))
    return inputs


def _input_format(graph: Graph) -> tuple[int, int]:
    return int(graph.meta.get("scale", 1)), graph.input_channels


def calibrate(
    graph: Graph,
    inputs: list[np.ndarray],
    estimator: str = "mse",
    layers: list[str] | None = None,
    source: str = "",
) -> Graph:
    """A copy of `graph` with meta["int8"] from the fp32 activations of `inputs`."""
    from fastsr.engine import Engine
    from fastsr.winograd_int8 import TRANSFORM, calibrate_taps

    if not inputs:
        raise ValueError("calibration needs at least one input")
    value_range(np.zeros(1, np.float32), estimator)  # reject an unknown estimator early
    layers = default_int8_layers(graph) if layers is None else list(layers)
    producers = graph.producers()
    unknown = [
        name
        for name in layers
        if name not in producers or producers[name].op not in ("conv2d", "conv_transpose2d")
    ]
    if unknown:
        raise ValueError(f"not conv outputs of this graph: {unknown}")
    read = sorted({producers[name].inputs[0] for name in layers})
    winograd_read = {producers[name].inputs[0] for name in layers
                     if runs_int8_winograd(graph, producers[name])}
    activations, taps = {}, {}
    for tensor in read:
        if tensor == graph.input:
            arrays = inputs
        else:
            engine = Engine(_prefix(graph, tensor), "cpu", optimize_graph=False)
            arrays = [engine.run(x) for x in inputs]
        values = np.concatenate([x.ravel() for x in arrays])
        scale, zero = scale_and_zero(*value_range(values, estimator))
        activations[tensor] = [scale, zero]
        if tensor in winograd_read:
            taps[tensor] = calibrate_taps(arrays, scale, zero, TAP_ESTIMATOR)
    out = graph.copy()
    out.meta["int8"] = {
        "layers": layers,
        "activations": activations,
        "estimator": estimator,
        "calibration": {"images": len(inputs), "crop": int(inputs[0].shape[1]), "source": source},
    }
    if taps:
        out.meta["int8"]["winograd"] = {"transform": TRANSFORM, "estimator": TAP_ESTIMATOR,
                                        "taps": taps}
    return out


def quantize_model(
    model,
    calibration: str | Path,
    output: str | Path | None = None,
    estimator: str = "mse",
    count: int = 16,
) -> Graph:
    """Calibrate `model` (a shipped name or model file, as fastsr.load takes) on the images
    under `calibration`; writes the int8-annotated graph to `output` if given."""
    from fastsr.graph import load
    from fastsr.graph.serialize import save_graph

    graph = load(model)
    inputs = calibration_inputs(calibration, *_input_format(graph), count)
    calibrated = calibrate(graph, inputs, estimator, source=str(calibration))
    if output is not None:
        save_graph(calibrated, output)
    return calibrated


def psnr_cost(
    graph: Graph,
    precision: str,
    data: str | Path,
    dataset: str = "Set5",
    fp32: float | None = None,
) -> dict:
    """Y-PSNR of `graph` on `dataset` at fp32 and at `precision` on the CPU backend."""
    from fastsr.api import Upscaler
    from fastsr.evaluate import evaluate

    scale = int(graph.meta["scale"])
    scores = {} if fp32 is None else {"fp32": fp32}
    for name in ("fp32", precision):
        if name not in scores:
            up = Upscaler(graph, backend="cpu", precision=name)
            result = evaluate(up, data, scale, datasets=[dataset], bicubic=False)
            scores[name] = result[dataset]["model"]["psnr"]
    return {"dataset": dataset, **scores, "psnr_cost_db": scores["fp32"] - scores[precision]}


SHIPPED_ESTIMATORS = ("mse", "percentile")  # max never won on the shipped models
CALIBRATION_DIR = Path("/work/shared/datasets/train")  # the shipped scales' images


def _record(json_path: Path, graph: Graph, key: str, meta: dict) -> None:
    """meta as `key` of the model's JSON config and of its graph file."""
    import json

    from fastsr.graph.serialize import save_graph
    from fastsr.graph.shipped import graph_path

    config = json.loads(json_path.read_text())
    config[key] = meta
    json_path.write_text(json.dumps(config, indent=2) + "\n")
    graph = graph.copy()
    graph.meta[key] = meta
    save_graph(graph, graph_path(json_path))


def int8_costs(calibrated: Graph, fp32: float | None = None) -> dict:
    """The Set5 cost of int8 with its convs direct and, where the calibration has Winograd
    taps, with the families that run int8 Winograd (a family of WINOGRAD_FAMILIES forced
    if the active one is not)."""
    from fastsr import _C
    from fastsr.backends.cpu_int8 import WINOGRAD_FAMILIES
    from fastsr.evaluate import default_data_dir

    direct = calibrated.copy()
    direct.meta["int8"] = {k: v for k, v in calibrated.meta["int8"].items() if k != "winograd"}
    costs = {"direct": psnr_cost(direct, "int8", default_data_dir(), fp32=fp32)}
    if "winograd" not in calibrated.meta["int8"]:
        return costs
    if _C.int8_isa() not in WINOGRAD_FAMILIES:
        _C.set_int8_isa(next(f for f in _C.supported_int8_isas() if f in WINOGRAD_FAMILIES))
    try:
        costs["winograd"] = psnr_cost(calibrated, "int8", default_data_dir(),
                                      fp32=costs["direct"]["fp32"])
    finally:
        _C.set_int8_isa(None)
    return costs


def record_int8(models: list[str] | None = None) -> None:
    """Calibrate every shipped model (or those named) on the training images with each of
    SHIPPED_ESTIMATORS, keep the one with the best Set5 PSNR (the worse of direct and
    Winograd convs: `int8_costs`), and record it and its cost."""
    from fastsr.graph.shipped import load_shipped, shipped

    train = CALIBRATION_DIR
    source = "datasets/train (T91, General100, BSD200), LR by bicubic downscale, seed 0"
    for name, json_path in sorted(shipped().items()):
        if models and name not in models:
            continue
        graph = load_shipped(json_path)
        graph.meta.pop("int8", None)
        inputs = calibration_inputs(train, *_input_format(graph))
        tried, fp32 = {}, None
        for estimator in SHIPPED_ESTIMATORS:
            calibrated = calibrate(graph, inputs, estimator, source=source)
            costs = int8_costs(calibrated, fp32)
            fp32 = next(iter(costs.values()))["fp32"]
            tried[estimator] = (costs, calibrated)
        worst = {e: max(cs.values(), key=lambda c: c["psnr_cost_db"])
                 for e, (cs, _) in tried.items()}
        best = min(worst, key=lambda e: worst[e]["psnr_cost_db"])
        costs, calibrated = tried[best]
        cost = worst[best]
        meta = calibrated.meta["int8"]
        meta["psnr_cost_db"] = cost["psnr_cost_db"]  # auto's: the worse algorithm's
        meta["measured"] = {
            **cost,
            "by_estimator": {e: c["int8"] for e, c in worst.items()},
            "by_algorithm": {a: c["psnr_cost_db"] for a, c in costs.items()},
        }
        _record(json_path, calibrated, "int8", meta)
        print(f"{name}: Set5 fp32 {fp32:.4f}, int8 {cost['int8']:.4f} dB ({best}; by algorithm "
              f"{meta['measured']['by_algorithm']})", flush=True)


def record_bf16(models: list[str] | None = None) -> None:
    """Measure every shipped model's (or those named) Set5 cost at bf16 (no calibration:
    the CPU backend rounds to bf16 the layers it runs in bf16 here) and record it."""
    from fastsr.evaluate import default_data_dir
    from fastsr.graph.shipped import load_shipped, shipped

    for name, json_path in sorted(shipped().items()):
        if models and name not in models:
            continue
        graph = load_shipped(json_path)
        cost = psnr_cost(graph, "bf16", default_data_dir())
        _record(json_path, graph, "bf16", {"psnr_cost_db": cost["psnr_cost_db"], "measured": cost})
        print(f"{name}: Set5 fp32 {cost['fp32']:.4f}, bf16 {cost['bf16']:.4f} dB", flush=True)


RECORDERS = {"int8": record_int8, "bf16": record_bf16}


def main(argv: list[str] | None = None) -> None:
    """`python -m fastsr.quantize [int8] [bf16]`: record the measured cost of each
    precision (default int8) in every shipped model's JSON config and graph file."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fastsr.quantize", description=main.__doc__)
    parser.add_argument("precisions", nargs="*", choices=sorted(RECORDERS), default=["int8"])
    parser.add_argument("--models", nargs="+", help="only these shipped models (default all)")
    args = parser.parse_args(argv)
    for precision in args.precisions:
        RECORDERS[precision](args.models)


if __name__ == "__main__":
    main()

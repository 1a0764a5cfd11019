"""Go / no-go study for int8 Winograd F(2x2, 3x3) and F(4x4, 3x3) (issue #15): the Set5 cost
of running the int8 body convs in the Winograd domain, simulated in torch (fake-quant, exact
integers).

Per conv: the u8 input (scale s, zero z from the shipped calibration) gives d = q - z; the
integer transform V = B^T d B of each patch (4x4 at stride 2, |V| <= 4 * 255; or 6x6 at
stride 4, |V| <= 100 * 255) is requantised per tap
(zero point 128, i.e. [-128, 127] * tap scale), optionally per (tap, input channel) with
that scale folded into the weights; the transformed weights U = G g G^T are quantised per
(tap, output channel) to |q| <= wmax; the 16 tap products are integer sums, dequantised,
and the fp32 output transform A^T M A plus the epilogue finishes. Tap scales come from the
fp32 activations of the shipped calibration crops (quantize.calibration_inputs).
Direct int8 convs are simulated too, to check the study against the real int8 program.
`python -m benchmarks.int8_winograd_sim [--models ...]`
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from fastsr import winograd_int8
from fastsr.backends import reference
from fastsr.quantize import CALIBRATION_DIR, INT8_WEIGHT_MAX, calibration_inputs, value_range

REFERENCE_NODE = reference.run_node  # the node runner the study patches
# output tile -> (B^T, G, A^T); F(4x4, 3x3) at the points 0, +-1, +-2, inf (Lavin & Gray 2015)
TRANSFORMS = {
    2: (winograd_int8.BT, winograd_int8.G, winograd_int8.AT),
    4: (
        np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]], np.float64),
    ),
}
TRANSFORMS = {m: tuple(torch.from_numpy(a) for a in t) for m, t in TRANSFORMS.items()}


def winograd_fits(graph, node) -> bool:
    w = graph.params[node.attrs["weight"]]
    return (node.op == "conv2d" and w.shape[2:] == (3, 3) and tuple(node.attrs["stride"]) == (1, 1)
            and tuple(node.attrs["padding"]) == (1, 1) and node.attrs["groups"] == 1
            and min(w.shape[:2]) >= 32 and node.epilogue("pixel_shuffle") == 1)


def u8(x, scale, zero):
    return torch.round(torch.clamp(x * (1 / torch.tensor(scale)) + zero, 0, 255))


def input_taps(x, scale, zero, tile=2):
    """N,C,H,W fp32 -> integer taps V (N, C, th, tw, a, a) of B^T d B, float64."""
    bt = TRANSFORMS[tile][0]
    d = (u8(x, scale, zero) - zero).double()
    h, w = x.shape[2:]
    th, tw = -(-h // tile), -(-w // tile)
    d = F.pad(d, (1, tile * tw + 1 - w, 1, tile * th + 1 - h))
    p = d.unfold(2, tile + 2, tile).unfold(3, tile + 2, tile)
    return torch.einsum("ia,nctwab,jb->nctwij", bt, p, bt)


class WinogradStudy:
    def __init__(self, graph, mode, estimator="max", wmax=INT8_WEIGHT_MAX, per_channel=False,
                 tile=2, f43_layers=None, shared_scale=False):
        """tile: the output tile of every Winograd conv; f43_layers (a slice of the Winograd
        convs in graph order) overrides it with 4 there and 2 elsewhere. shared_scale: one
        scale per output channel for tap scale x weight scale, so A^T M A could run on the
        integer sums."""
        self.graph, self.mode, self.estimator = graph, mode, estimator
        self.wmax, self.per_channel, self.shared_scale = wmax, per_channel, shared_scale
        self.meta = graph.meta["int8"]
        self.tap_scales = {}
        convs = [n.output for n in graph.nodes if self.wino(n)]
        chosen = set(convs[f43_layers] if f43_layers is not None else convs if tile == 4 else [])
        self.tiles = {name: 4 if name in chosen else 2 for name in convs}

    def int8(self, node):
        return node.output in self.meta["layers"]

    def wino(self, node):
        return self.mode == "winograd" and self.int8(node) and winograd_fits(self.graph, node)

    def calibrate(self, inputs):
        """Per-tap (or per tap and channel) scales of the Winograd convs' V, from fp32 runs."""
        seen = {}
        orig = REFERENCE_NODE

        def observe(graph, node, ins):
            if self.wino(node):
                v = input_taps(ins[0], *self.meta["activations"][node.inputs[0]],
                               self.tiles[node.output])
                v = v.permute(4, 5, 1, 0, 2, 3).reshape(v.shape[4] * v.shape[5], v.shape[1], -1)
                seen.setdefault(node.output, []).append(v.float())
            return orig(graph, node, ins)

        reference.run_node = observe
        try:
            with torch.no_grad():
                for x in inputs:
                    reference.run_graph(self.graph, torch.from_numpy(x).permute(0, 3, 1, 2))
        finally:
            reference.run_node = orig
        for name, parts in seen.items():
            v = torch.cat(parts, 2).numpy()
            groups = v if self.per_channel else v.reshape(v.shape[0], 1, -1)
            scales = np.empty(groups.shape[:2])
            for t in range(groups.shape[0]):
                for c in range(groups.shape[1]):
                    lo, hi = value_range(groups[t, c], self.estimator)
                    scales[t, c] = max(-lo / 128, hi / 127, 1e-6)
            self.tap_scales[name] = torch.from_numpy(scales)  # (a * a, C or 1)

    def conv(self, node, x):
        graph, a = self.graph, node.attrs
        weight = torch.from_numpy(graph.params[a["weight"]])
        scale, zero = self.meta["activations"][node.inputs[0]]
        if not self.wino(node):
            xq = (u8(x, scale, zero) - zero) * torch.tensor(scale)
            peak = weight.abs().flatten(1).amax(1).clamp_min(1e-30)[:, None, None, None]
            wq = torch.clamp(torch.round(weight / (peak / INT8_WEIGHT_MAX)), -63, 63)
            return F.conv2d(xq, wq * (peak / INT8_WEIGHT_MAX), None, a["stride"], a["padding"],
                            a["dilation"], a["groups"])
        tile = self.tiles[node.output]
        _, g, at = TRANSFORMS[tile]
        v = input_taps(x, scale, zero, tile)
        n, c, th, tw, alpha = v.shape[:5]
        ts = self.tap_scales[node.output].reshape(alpha, alpha, -1).permute(2, 0, 1)  # C|1, a, a
        vq = torch.clamp(torch.round(v / ts[None, :, None, None]), -128, 127)
        u = torch.einsum("ia,ocab,jb->ocij", g, weight.double(), g) * ts[None]
        peak_dims = (1, 2, 3) if self.shared_scale else 1  # per out channel, or (out, tap)
        ws = u.abs().amax(peak_dims, keepdim=True).clamp_min(1e-30) / self.wmax
        uq = torch.clamp(torch.round(u / ws), -self.wmax, self.wmax)
        m = torch.einsum("nctwij,ocij->notwij", vq, uq) * ws[None, :, 0, None, None] * scale
        y = torch.einsum("ia,notwab,jb->notwij", at, m, at)  # n, o, th, tw, tile, tile
        y = y.permute(0, 1, 2, 4, 3, 5).reshape(n, -1, tile * th, tile * tw)
        return y[:, :, : x.shape[2], : x.shape[3]].float()

    def run_node(self, graph, node, ins):
        if not self.int8(node):
            return REFERENCE_NODE(graph, node, ins)
        bias = torch.from_numpy(graph.params[node.attrs["bias"]])[:, None, None]
        y = self.conv(node, ins[0]) + bias
        y = reference.activation(graph, y, node.epilogue("activation"),
                                 node.epilogue("activation_param"))
        if node.epilogue("pixel_shuffle") != 1:
            y = F.pixel_shuffle(y, node.epilogue("pixel_shuffle"))
        if len(ins) > 1:
            skip = ins[1]
            if node.epilogue("skip_resize") is not None:
                skip = reference.resize(skip, node.epilogue("skip_resize"),
                                        y.shape[2] // skip.shape[2])
            y = y + skip
        return y


def set5_psnr(graph, study=None) -> float:
    from fastsr.api import Upscaler
    from fastsr.evaluate import default_data_dir, evaluate

    orig = REFERENCE_NODE
    if study is not None:
        reference.run_node = study.run_node
    try:
        up = Upscaler(graph, backend="reference")
        return evaluate(up, default_data_dir(), int(graph.meta["scale"]), datasets=["Set5"],
                        bicubic=False)["Set5"]["model"]["psnr"]
    finally:
        reference.run_node = orig


VARIANTS = {  # name -> WinogradStudy keyword arguments
    "direct int8 (as shipped)": dict(mode="direct"),
    "wino per-tap max, w7": dict(mode="winograd", estimator="max"),
    "wino per-tap mse, w7": dict(mode="winograd", estimator="mse"),
    "wino per-tap percentile, w7": dict(mode="winograd", estimator="percentile"),
    "wino per-tap mse, w8": dict(mode="winograd", estimator="mse", wmax=127),
    "wino per-tap+channel mse, w7": dict(mode="winograd", estimator="mse", per_channel=True),
    "wino per-tap+channel mse, w8": dict(mode="winograd", estimator="mse", wmax=127,
                                         per_channel=True),
    "wino per-tap mse, w7, shared scale": dict(mode="winograd", estimator="mse",
                                               shared_scale=True),
    "F(4,3) per-tap mse, w7": dict(mode="winograd", estimator="mse", tile=4),
    "F(4,3) per-tap+channel mse, w7": dict(mode="winograd", estimator="mse", tile=4,
                                           per_channel=True),
    "F(4,3) per-tap+channel mse, w8": dict(mode="winograd", estimator="mse", tile=4,
                                           per_channel=True, wmax=127),
    "F(4,3) every other conv, mse w7": dict(mode="winograd", estimator="mse",
                                            f43_layers=slice(None, None, 2)),
    "F(4,3) first 8 convs, mse w7": dict(mode="winograd", estimator="mse",
                                         f43_layers=slice(None, 8)),
    "F(4,3) last 8 convs, mse w7": dict(mode="winograd", estimator="mse",
                                        f43_layers=slice(8, None)),
}


def main() -> None:
    from fastsr.graph import load

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["quality_x2", "quality_x4"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(2)
    for model in args.models:
        graph = load(model)
        inputs = calibration_inputs(CALIBRATION_DIR, int(graph.meta["scale"]), graph.input_channels)
        fp32 = set5_psnr(graph)
        print(f"{model}: Set5 fp32 (torch) {fp32:.4f} dB", flush=True)
        for name in args.variants:
            study = WinogradStudy(graph, **VARIANTS[name])
            study.calibrate(inputs)
            psnr = set5_psnr(graph, study)
            print(f"  {name:32s} {psnr:.4f} dB, cost {fp32 - psnr:+.4f}", flush=True)


if __name__ == "__main__":
    main()

"""Grey models (1 channel in and out, trained on grey images) on the Y image stage.

fastsr's image stage hands a Y model BT.601 studio-range luma (16-235 in 8 bits), which
is what the shipped Y models were trained on. A community grey model was trained on grey
pictures in full range (0-255: the luma 0.299 R + 0.587 G + 0.114 B). So the graph gets
a pointwise map from studio to full range in front and its inverse behind: on an RGB
image the model sees the full-range luma and the chroma is carried by bicubic, and a
grey image reaches the model unchanged, as the same picture stored as RGB does.
"""

from __future__ import annotations

import numpy as np

from fastsr.color import RGB_TO_YCBCR, YCBCR_OFFSET
from fastsr.graph.ir import Graph, Node

# Studio luma = offset + span * full-range luma (span = 219/255).
_SPAN, _OFFSET = float(RGB_TO_YCBCR[0].sum()), float(YCBCR_OFFSET[0])


def full_range_luma(graph: Graph) -> Graph:
    """`graph` (a 1-channel model) fed full-range luma by the studio-range Y stage."""
    assert graph.input_channels == 1, graph.input_channels
    graph = graph.copy()
    full_in, model_out = f"{graph.input}.full_range", f"{graph.output}.full_range"
    for node in graph.nodes:
        node.inputs = [full_in if name == graph.input else name for name in node.inputs]
        if node.output == graph.output:
            node.output = model_out
    graph.params.update({
        "grey.to_full.scale": np.array([1 / _SPAN], np.float32),
        "grey.to_full.shift": np.array([-_OFFSET / _SPAN], np.float32),
        "grey.to_studio.scale": np.array([_SPAN], np.float32),
        "grey.to_studio.shift": np.array([_OFFSET], np.float32),
    })
    to_full = Node("affine", [graph.input], full_in,
                   {"scale": "grey.to_full.scale", "shift": "grey.to_full.shift"}, "grey.to_full")
    to_studio = Node("affine", [model_out], graph.output,
                     {"scale": "grey.to_studio.scale", "shift": "grey.to_studio.shift"},
                     "grey.to_studio")
    graph.nodes = [to_full, *graph.nodes, to_studio]
    graph.meta["luma"] = "full range"
    graph.validate()
    return graph

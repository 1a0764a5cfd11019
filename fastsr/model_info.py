"""What `fastsr info MODEL` says about a model: which path it takes and why."""

from __future__ import annotations

from fastsr.graph.ir import Graph
from fastsr.tiling import receptive_radius


def model_lines(graph: Graph) -> list[str]:
    meta = graph.meta
    name = meta.get("architecture") or meta.get("name", "model")
    lines = [f"model: {name}, x{meta['scale']} {meta['color']}"
             + (" (loaded by spandrel)" if meta.get("source") == "spandrel" else "")]
    from fastsr.graph.from_spandrel import needs_torch

    reason = needs_torch(graph)
    if reason is None:
        radius = receptive_radius(graph)
        lines.append(f"runs on: fastsr kernels ({len(graph.nodes)} ops before fusion)")
        lines.append("tiles: " + ("exact, receptive field radius "
                                  f"{radius} input pixels" if radius is not None
                                  else "none (the model pools over the whole image)"))
    else:
        from fastsr.torch_reach import MARGIN

        radius = receptive_radius(graph)
        lines.append(f"runs on: PyTorch (fallback), because {reason}")
        lines.append("tiles: " + (f"exact, measured reach {radius} input pixels"
                                  if radius < MARGIN else
                                  f"overlap {MARGIN} input pixels (the reach exceeds the "
                                  "probe: close to untiled, not exact)")
                     + "; not serialisable, not exportable to ONNX by fastsr")
    req = meta.get("size_requirements")
    if req and (req["minimum"] or req["multiple_of"] > 1 or req["square"]):
        padded = ("padded by spandrel" if reason else "fastsr pads the frame, reflect then "
                  "replicate") + ", output cropped"
        lines.append(f"size requirements: {req} ({padded})")
    if "supports_half" in meta:
        lines.append(f"half precision safe: fp16 {meta['supports_half']}, "
                     f"bf16 {meta['supports_bfloat16']}; tiling advice: {meta['tiling']}")
    return lines

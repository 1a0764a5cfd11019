"""Graph -> Graph rewrites that move work into conv epilogues, and buffer planning.

Every pass returns a new graph computing the same output (up to float rounding) and
keeps the node list topologically ordered. Parameters are never mutated in place:
folded weights are new arrays under new names.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fastsr.graph.ir import (
    CONV_OPS,
    EPILOGUE_ACTIVATIONS,
    GATE_ACTIVATIONS,
    GLOBAL,
    Graph,
    Node,
)


def _single_consumer(graph: Graph, tensor: str, consumers=None) -> Node | None:
    users = (consumers or graph.consumers()).get(tensor, [])
    if len(users) != 1 or tensor == graph.output:
        return None
    return users[0]


def _bare_conv(node: Node) -> bool:
    """A conv whose epilogue is still empty, so any epilogue stage can be added."""
    return (
        node.op in CONV_OPS
        and node.epilogue("activation") is None
        and node.epilogue("pixel_shuffle") == 1
        and len(node.inputs) == 1
    )


def _merge_into(graph: Graph, producer: Node, consumer: Node, **attrs) -> None:
    """Give `producer` the consumer's output and attrs; drop the consumer."""
    producer.attrs.update(attrs)
    producer.output = consumer.output
    producer.name = f"{producer.name} + {consumer.name}"
    graph.nodes.remove(consumer)


def _rewrite_pairs(graph: Graph, fuse: Callable[[Graph, Node, Node], bool]) -> Graph:
    """Apply `fuse(graph, producer, consumer)` to producer -> single consumer pairs."""
    graph = graph.copy()
    changed = True
    while changed:
        changed = False
        producers = graph.producers()
        consumers = graph.consumers()
        for node in list(graph.nodes):
            for name in node.inputs:
                producer = producers.get(name)
                if (
                    producer is not None
                    and _single_consumer(graph, name, consumers) is node
                    and fuse(graph, producer, node)
                ):
                    changed = True
                    break
            if changed:
                break
    return graph


def fold_batchnorm(graph: Graph) -> Graph:
    """Turn each batch_norm into an affine scale/shift (then `fold_affine` removes it)."""
    graph = graph.copy()
    for node in graph.nodes:
        if node.op != "batch_norm":
            continue
        a = node.attrs
        inv_std = 1.0 / np.sqrt(graph.params[a["var"]].astype(np.float64) + a["eps"])
        scale = graph.params[a["weight"]] * inv_std
        shift = graph.params[a["bias"]] - graph.params[a["mean"]] * scale
        graph.params[f"{node.output}.scale"] = scale.astype(np.float32)
        graph.params[f"{node.output}.shift"] = shift.astype(np.float32)
        node.op = "affine"
        node.attrs = {"scale": f"{node.output}.scale", "shift": f"{node.output}.shift"}
    return graph


def fold_affine(graph: Graph) -> Graph:
    """Fold an affine that follows a bare conv into the conv's weight and bias."""

    def fuse(graph: Graph, conv: Node, affine: Node) -> bool:
        if affine.op != "affine" or not _bare_conv(conv):
            return False
        weight = graph.params[conv.attrs["weight"]]
        out_channels = weight.shape[0] if conv.op == "conv2d" else weight.shape[1] * conv.attrs[
            "groups"
        ]
        scale = np.broadcast_to(graph.params[affine.attrs["scale"]], (out_channels,))
        shift = np.broadcast_to(graph.params[affine.attrs["shift"]], (out_channels,))
        bias = graph.param(conv.attrs["bias"])
        bias = np.zeros(out_channels, np.float32) if bias is None else bias
        if conv.op == "conv2d":
            folded = weight * scale.reshape(-1, 1, 1, 1)
        else:  # IOHW: output channel o of group g is column o within that group
            groups = conv.attrs["groups"]
            per_group = weight.shape[1]
            grouped = weight.reshape(groups, -1, per_group, *weight.shape[2:])
            folded = (grouped * scale.reshape(groups, 1, per_group, 1, 1)).reshape(weight.shape)
        name = affine.output
        graph.params[f"{name}.weight"] = folded.astype(np.float32)
        graph.params[f"{name}.bias"] = (bias * scale + shift).astype(np.float32)
        _merge_into(graph, conv, affine, weight=f"{name}.weight", bias=f"{name}.bias")
        return True

    return _rewrite_pairs(graph, fuse)


def fuse_activation(graph: Graph) -> Graph:
    """conv -> activation becomes one conv with the activation in its epilogue."""

    def fuse(graph: Graph, conv: Node, act: Node) -> bool:
        if act.op not in EPILOGUE_ACTIVATIONS or not _bare_conv(conv):
            return False
        param = act.attrs.get("slope", act.attrs.get("alpha"))
        _merge_into(graph, conv, act, activation=act.op, activation_param=param)
        return True

    return _rewrite_pairs(graph, fuse)


def fuse_pixel_shuffle(graph: Graph) -> Graph:
    """conv -> pixel_shuffle becomes a conv whose stores do the shuffle."""

    def fuse(graph: Graph, conv: Node, shuffle: Node) -> bool:
        if (
            shuffle.op != "pixel_shuffle"
            or conv.op not in CONV_OPS
            or conv.epilogue("pixel_shuffle") != 1
            or len(conv.inputs) != 1
        ):
            return False
        _merge_into(graph, conv, shuffle, pixel_shuffle=shuffle.attrs["factor"])
        return True

    return _rewrite_pairs(graph, fuse)


def _fuse_add(graph: Graph, skip_of: Callable[[Graph, Node], tuple[str, dict] | None]) -> Graph:
    """add(conv_out, other) -> conv with `other` (as mapped by skip_of) as epilogue skip."""

    def fuse(graph: Graph, conv: Node, add: Node) -> bool:
        if add.op != "add" or conv.op not in CONV_OPS or len(conv.inputs) != 1:
            return False
        other_name = add.inputs[1] if add.inputs[0] == conv.output else add.inputs[0]
        if other_name == conv.output:
            return False
        skip = skip_of(graph, graph.producers().get(other_name), other_name)
        if skip is None:
            return False
        skip_tensor, attrs = skip
        producers = graph.producers()
        # The conv runs where it stands, so its skip must already exist there.
        if skip_tensor in producers and graph.nodes.index(
            producers[skip_tensor]
        ) > graph.nodes.index(conv):
            return False
        conv.inputs = [conv.inputs[0], skip_tensor]
        _merge_into(graph, conv, add, **attrs)
        return True

    return _rewrite_pairs(graph, fuse)


def fuse_residual_add(graph: Graph) -> Graph:
    """A residual add whose one side is a conv moves into that conv's epilogue."""
    return _fuse_add(graph, lambda graph, producer, name: (name, {}))


def fuse_global_residual(graph: Graph) -> Graph:
    """add(conv_out, resize(x)) -> conv whose epilogue resizes x and adds it.

    This is the global residual over a bicubic upscale of the input: the upscaled image
    is then never written to memory.
    """

    def skip_of(graph: Graph, producer: Node | None, name: str):
        if producer is None or producer.op != "resize" or len(graph.consumers()[name]) != 1:
            return None
        return producer.inputs[0], {"skip_resize": producer.attrs["mode"]}

    return eliminate_dead(_fuse_add(graph, skip_of))


def _scalar_affine(graph: Graph, node: Node) -> tuple[float, float] | None:
    """(scale, shift) of an affine whose every channel has the same ones, else None."""
    scale, shift = (graph.params[node.attrs[k]] for k in ("scale", "shift"))
    if np.ptp(scale) or np.ptp(shift):
        return None
    return float(scale.flat[0]), float(shift.flat[0])


def fuse_gate(graph: Graph) -> Graph:
    """mul(add(y, skip), a * act(y) + b) with y a conv's output becomes that conv with a
    gated skip: SPAN's block tail (y + x) * (sigmoid(y) - 0.5). y has two readers (the add
    and the activation), so no pair rewrite sees it; after this one, y is never written."""
    graph = graph.copy()
    changed = True
    while changed:
        changed = False
        for mul in graph.nodes:
            fused = mul.op == "mul" and _gated_conv(graph, mul)
            if fused:
                conv, skip, gate, scale, shift, dropped = fused
                conv.inputs = [conv.inputs[0], skip]
                conv.attrs.update(gate=gate, gate_scale=scale, gate_shift=shift)
                conv.output, conv.name = mul.output, f"{conv.name} + gate {mul.name}"
                graph.nodes = [n for n in graph.nodes if all(n is not d for d in dropped)]
                changed = True
                break
    return graph


def _gated_conv(graph: Graph, mul: Node):
    """(conv, skip, gate, scale, shift, nodes it replaces) when `mul` ends a gated skip
    over a conv's output, else None."""
    producers, consumers = graph.producers(), graph.consumers()

    def only_reader(tensor: str) -> Node | None:
        return _single_consumer(graph, tensor, consumers)

    for total_name, gate_name in (mul.inputs, mul.inputs[::-1]):
        total, gate_node = producers.get(total_name), producers.get(gate_name)
        if total is None or gate_node is None or total.op != "add":
            continue
        scale, shift, act = 1.0, 0.0, gate_node
        if gate_node.op == "affine":
            scalars = _scalar_affine(graph, gate_node)
            act = producers.get(gate_node.inputs[0])
            if scalars is None or act is None or only_reader(act.output) is not gate_node:
                continue
            scale, shift = scalars
        if act.op not in GATE_ACTIVATIONS or only_reader(gate_name) is not mul:
            continue
        y = act.inputs[0]
        conv = producers.get(y)
        skip = total.inputs[1] if total.inputs[0] == y else total.inputs[0]
        if (
            conv is None
            or conv.op != "conv2d"
            or y not in total.inputs
            or skip == y
            or only_reader(total_name) is not mul
            or y == graph.output
            or {id(n) for n in consumers[y]} != {id(total), id(act)}
            or len(conv.inputs) != 1
            or conv.epilogue("pixel_shuffle") != 1
            or not _defined_before(graph, skip, conv, producers)
        ):
            continue
        dropped = [total, act, mul] + ([gate_node] if gate_node is not act else [])
        return conv, skip, act.op, scale, shift, dropped
    return None


def _defined_before(graph: Graph, tensor: str, node: Node, producers) -> bool:
    """Whether `tensor` exists where `node` runs (the conv runs where it stands)."""
    producer = producers.get(tensor)
    return producer is None or graph.nodes.index(producer) < graph.nodes.index(node)


def fuse_mul_add(graph: Graph) -> Graph:
    """add(mul(x, s), skip) with s pooled (RCAN's channel attention, then its residual)
    becomes one mul_add pass over x. It takes the add's place, where all three exist."""
    shapes = graph.shapes()

    def fuse(graph: Graph, mul: Node, add: Node) -> bool:
        if mul.op != "mul" or add.op != "add" or shapes[mul.inputs[1]].scale != GLOBAL:
            return False
        skip = add.inputs[1] if add.inputs[0] == mul.output else add.inputs[0]
        if skip == mul.output:
            return False
        add.op, add.inputs = "mul_add", [*mul.inputs, skip]
        add.name = f"{mul.name} + {add.name}"
        graph.nodes.remove(mul)
        return True

    return _rewrite_pairs(graph, fuse)


def eliminate_dead(graph: Graph) -> Graph:
    """Drop nodes whose output nothing reads."""
    graph = graph.copy()
    live = {graph.output}
    kept = []
    for node in reversed(graph.nodes):
        if node.output in live:
            kept.append(node)
            live.update(node.inputs)
    graph.nodes = kept[::-1]
    used = {
        value for node in graph.nodes for value in node.attrs.values() if isinstance(value, str)
    }
    graph.params = {k: v for k, v in graph.params.items() if k in used}
    return graph


PASSES = (
    fold_batchnorm,
    fold_affine,
    fuse_activation,
    fuse_gate,
    fuse_pixel_shuffle,
    fuse_global_residual,
    fuse_residual_add,
    fuse_mul_add,
    eliminate_dead,
)


def optimize(graph: Graph) -> Graph:
    """Every pass in order. The result is marked in its meta, so a graph that was saved
    optimised (the shipped models) is not optimised again on load."""
    if graph.meta.get("optimized"):
        return graph
    for graph_pass in PASSES:
        graph = graph_pass(graph)
    graph.validate()
    graph.meta["optimized"] = True
    return graph


def plan_memory(graph: Graph) -> dict[str, int]:
    """Intermediate tensor -> buffer slot, reusing a slot once its tensor is dead.

    The graph input and output live in caller-owned arrays and get no slot. A node's
    output never shares a slot with its own inputs (kernels do not work in place).
    Free slots are handed out best-fit by size relative to the input, so a slot keeps
    holding tensors of one shape where it can.
    """
    shapes = graph.shapes()
    last_use = {name: i for i, node in enumerate(graph.nodes) for name in node.inputs}

    def size(tensor: str) -> float:
        shape = shapes[tensor]
        return shape.channels * (1e-9 if shape.scale == GLOBAL else float(shape.scale) ** 2)

    slot_of: dict[str, int] = {}
    slot_size: list[float] = []
    free: list[int] = []
    for i, node in enumerate(graph.nodes):
        if node.output != graph.output:
            need = size(node.output)
            fitting = [s for s in free if slot_size[s] >= need]
            if fitting:
                slot = min(fitting, key=lambda s: slot_size[s])
            elif free:
                slot = max(free, key=lambda s: slot_size[s])
            else:
                slot = len(slot_size)
                slot_size.append(0.0)
            if slot in free:
                free.remove(slot)
            slot_size[slot] = max(slot_size[slot], need)
            slot_of[node.output] = slot
        for name in set(node.inputs):
            if last_use.get(name) == i and name in slot_of:
                free.append(slot_of[name])
    return slot_of

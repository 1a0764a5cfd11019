"""Graphs on disk: the IR and its parameters in one safetensors file, no pickle.

The IR (format version, input, nodes with their attrs and epilogues, output, meta) is
JSON under the key "fastsr.graph" of the safetensors metadata header; the parameters are
the file's float32 tensors. Reading one needs
numpy and safetensors only. A file is checked on load (format, version, parameter
dtypes and values, `Graph.validate`): anything wrong is a ValueError naming the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from fastsr.graph.ir import Graph, GraphError, Node, require_captured

FORMAT = "fastsr.graph"
VERSION = 1
SUFFIX = ".graph.safetensors"
_NODE_FIELDS = {"op": str, "inputs": list, "output": str, "attrs": dict, "name": str}
_SCALARS = (type(None), bool, int, float, str)


def save_graph(graph: Graph, path: str | Path) -> Path:
    """Write `graph` to `path` (replaced whole: a reader never sees half a file)."""
    graph.validate()
    require_captured(graph, "save this graph")
    path = Path(path)
    ir = {
        "version": VERSION,
        "input": graph.input,
        "input_channels": graph.input_channels,
        "output": graph.output,
        "nodes": [_node_ir(node) for node in graph.nodes],
        "meta": graph.meta,
    }
    try:
        header = json.dumps(ir, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"graph meta cannot be stored as JSON: {error}") from None
    data = save(
        {name: np.ascontiguousarray(value) for name, value in graph.params.items()},
        metadata={FORMAT: header},  # one key: safetensors writes several in any order
    )
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def is_graph_file(path: str | Path) -> bool:
    """Whether `path` is a safetensors file that holds a serialised graph."""
    try:
        with safe_open(str(path), framework="numpy") as stored:
            return FORMAT in (stored.metadata() or {})
    except (SafetensorError, OSError):
        return False


def load_graph(path: str | Path) -> Graph:
    """The graph saved at `path`; FileNotFoundError if missing, ValueError if unusable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no graph file at {path}")
    try:
        with safe_open(str(path), framework="numpy") as stored:
            ir = _read_header(stored.metadata() or {})
            params = {name: stored.get_tensor(name) for name in stored.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a readable safetensors file: {error}") from None
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    try:
        graph = _graph_from_ir(ir, params)
        graph.validate()
    except GraphError as error:
        raise ValueError(f"{path}: invalid graph: {error}") from None
    # validate() trusts attrs to be of the types the frontends emit; a file may hold any.
    except (KeyError, TypeError, IndexError, ZeroDivisionError, AttributeError) as error:
        raise ValueError(f"{path}: invalid graph: {type(error).__name__}: {error}") from None
    return graph


def _node_ir(node: Node) -> dict:
    where = node.name or node.op
    for key, value in node.attrs.items():
        values = value if isinstance(value, tuple | list) else (value,)
        if not all(isinstance(v, _SCALARS) for v in values):
            raise ValueError(f"{where}: attr {key}={value!r} cannot be stored")
    return {"op": node.op, "inputs": node.inputs, "output": node.output,
            "attrs": node.attrs, "name": node.name}


def _read_header(header: dict[str, str]) -> dict:
    if FORMAT not in header:
        raise ValueError(f"not a fastsr graph file (its header has no {FORMAT!r} entry)")
    try:
        ir = json.loads(header[FORMAT])
    except json.JSONDecodeError as error:
        raise ValueError(f"graph header is not JSON: {error}") from None
    version = ir.get("version") if isinstance(ir, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"graph header has no format version (got {version!r})")
    if version > VERSION:
        raise ValueError(
            f"written in graph format version {version}, newer than this fastsr reads "
            f"({VERSION}); upgrade fastsr"
        )
    if version < VERSION:
        raise ValueError(
            f"written in graph format version {version}, older than this fastsr reads "
            f"({VERSION}); save the graph again from its model"
        )
    return ir


def _graph_from_ir(ir: dict, params: dict[str, np.ndarray]) -> Graph:
    fields = {"input": str, "input_channels": int, "output": str, "nodes": list, "meta": dict}
    for key, kind in fields.items():
        if not isinstance(ir.get(key), kind) or isinstance(ir.get(key), bool):
            raise GraphError(f"header field {key!r} is missing or not of type {kind.__name__}")
    for name, value in params.items():
        if value.dtype != np.float32 or not np.isfinite(value).all():
            raise GraphError(f"parameter {name!r} is not finite float32 ({value.dtype})")
    nodes = [_node_from_ir(i, node) for i, node in enumerate(ir["nodes"])]
    referenced = {v for node in nodes for v in node.attrs.values() if isinstance(v, str)}
    unused = sorted(params.keys() - referenced)
    if unused:
        raise GraphError(f"parameters {unused[:4]} are not used by any node")
    return Graph(ir["input"], ir["input_channels"], ir["output"], nodes, params, ir["meta"])


def _node_from_ir(index: int, node) -> Node:
    if not isinstance(node, dict) or any(
        not isinstance(node.get(key), kind) for key, kind in _NODE_FIELDS.items()
    ):
        raise GraphError(f"node {index} lacks one of {list(_NODE_FIELDS)} or has a wrong type")
    if not all(isinstance(name, str) for name in node["inputs"]):
        raise GraphError(f"node {index}: inputs must be tensor names")
    attrs = {}
    for key, value in node["attrs"].items():
        if isinstance(value, list) and all(isinstance(v, int | float) for v in value):
            value = tuple(value)  # JSON has no tuples; the IR keeps strides etc. as tuples
        elif not isinstance(value, _SCALARS):
            raise GraphError(f"node {index}: attr {key}={value!r} has an unsupported type")
        attrs[key] = value
    return Node(node["op"], list(node["inputs"]), node["output"], attrs, node["name"])

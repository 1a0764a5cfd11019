"""Graph + backend -> per-shape Plans that run frames."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from fastsr.backends import get_backend
from fastsr.graph.ir import Graph, GraphError
from fastsr.graph.passes import optimize, plan_memory


@dataclass
class Plan:
    """Concrete shapes and activation buffers of a graph for one input size."""

    batch: int
    height: int
    width: int
    shapes: dict[str, tuple[int, int, int]]  # tensor -> (channels, height, width)
    slot_of: dict[str, int]  # intermediate tensor -> buffer slot it lives in
    slot_elems: list[int]  # float32 elements of each slot (batch included)

    @property
    def peak_bytes(self) -> int:
        return 4 * sum(self.slot_elems)

    def elems(self, tensor: str) -> int:
        c, h, w = self.shapes[tensor]
        return self.batch * c * h * w


def make_plan(graph: Graph, batch: int, height: int, width: int) -> Plan:
    if batch < 1 or height < 1 or width < 1:
        raise ValueError(f"input size must be positive, got N={batch} H={height} W={width}")
    shapes = {name: s.bind(height, width) for name, s in graph.shapes().items()}
    slot_of = plan_memory(graph)
    slot_elems = [0] * (max(slot_of.values(), default=-1) + 1)
    plan = Plan(batch, height, width, shapes, slot_of, slot_elems)
    for tensor, slot in slot_of.items():
        slot_elems[slot] = max(slot_elems[slot], plan.elems(tensor))
    return plan


class Engine:
    """A graph compiled for one backend; plans are made per input size and cached.

    Calls are serialised by a lock: a plan owns its activation buffers, and the CPU
    backend already uses every thread it is given inside one call.
    """

    def __init__(self, graph: Graph, backend: str = "reference", optimize_graph: bool = True):
        self.backend = get_backend(backend)
        reason = self.backend.availability()
        if reason is not None:
            raise RuntimeError(f"backend '{backend}' is not available: {reason}")
        graph.validate()
        self.graph = optimize(graph) if optimize_graph else graph
        problems = self.backend.unsupported(self.graph)
        if problems:
            raise GraphError(f"backend '{backend}' cannot run: " + "; ".join(problems))
        self._compiled: dict[tuple[int, int, int], object] = {}
        self._lock = threading.Lock()

    def plan(self, batch: int, height: int, width: int) -> Plan:
        return make_plan(self.graph, batch, height, width)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """float32 N x H x W x C in, N x sH x sW x C' out."""
        if x.ndim != 4 or x.shape[3] != self.graph.input_channels:
            raise ValueError(
                f"expected an N x H x W x {self.graph.input_channels} tensor, got {tuple(x.shape)}"
            )
        key = (x.shape[0], x.shape[1], x.shape[2])
        with self._lock:
            run = self._compiled.get(key)
            if run is None:
                run = self.backend.compile(self.graph, self.plan(*key))
                self._compiled = {key: run}  # keep one plan: a stream keeps its frame size
            return run(x.contiguous())

"""Graph + backend -> per-shape Plans that run frames."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from fastsr.backends import check_precision, get_backend
from fastsr.graph.ir import Graph, GraphError
from fastsr.graph.passes import optimize, plan_memory
from fastsr.pixels import is_torch_tensor


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
    """A graph compiled for one backend and precision; plans are made per input size and
    the last one is kept (a stream keeps its frame size).

    `backend` is a name or a backend object; `threads` (None: the backend's default)
    governs every thread pool its runs use. Calls are serialised by a lock: a plan owns
    its activation buffers, and the CPU backend already uses every thread it is given.
    """

    def __init__(
        self,
        graph: Graph,
        backend="reference",
        precision: str = "fp32",
        threads: int | None = None,
        optimize_graph: bool = True,
    ):
        self.backend = get_backend(backend) if isinstance(backend, str) else backend
        reason = self.backend.availability()
        if reason is not None:
            raise RuntimeError(f"backend '{self.backend.name}' is not available: {reason}")
        if precision == "auto":
            from fastsr.quantize import auto_precision

            precision = auto_precision(graph, self.backend)
        check_precision(self.backend, precision)
        self.precision, self.threads = precision, threads
        graph.validate()
        self.graph = optimize(graph) if optimize_graph else graph
        problems = self.backend.unsupported(self.graph)
        if problems:
            raise GraphError(f"backend '{self.backend.name}' cannot run: " + "; ".join(problems))
        self._compiled: dict[tuple[int, int, int], object] = {}
        self._lock = threading.Lock()

    def plan(self, batch: int, height: int, width: int) -> Plan:
        return make_plan(self.graph, batch, height, width)

    def plan_bytes(self, batch: int, height: int, width: int) -> int:
        """The memory a compiled plan for this input size holds (backend's own count)."""
        return self.backend.plan_bytes(
            self.graph, self.plan(batch, height, width), self.precision, self.threads
        )

    def compiled(self, batch: int, height: int, width: int):
        """The backend's compiled plan for this input size (made once, then reused).

        The caller holds `lock` around its runs."""
        key = (batch, height, width)
        compiled = self._compiled.get(key)
        if compiled is None:
            self._compiled = {}  # free the old plan's buffers before making the new one
            compiled = self.backend.compile(
                self.graph, self.plan(*key), self.precision, self.threads
            )
            self._compiled = {key: compiled}
        return compiled

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def run(self, x):
        """float32 N x H x W x C in (numpy array or torch tensor), N x sH x sW x C' out, as
        the same kind."""
        if x.ndim != 4 or x.shape[3] != self.graph.input_channels:
            raise ValueError(
                f"expected an N x H x W x {self.graph.input_channels} tensor, got {tuple(x.shape)}"
            )
        given_torch = is_torch_tensor(x)
        wants_torch = self.backend.array == "torch"
        if given_torch and not wants_torch:
            data = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        elif wants_torch and not given_torch:
            import torch

            data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        else:
            data = x.contiguous() if given_torch else np.ascontiguousarray(x, np.float32)
        with self._lock:
            y = self.compiled(*x.shape[:3]).run(data)
        if given_torch and not wants_torch:
            import torch

            return torch.from_numpy(y).to(x.device)
        if wants_torch and not given_torch:
            return y.numpy()
        return y

"""State dicts of other people's architectures -> Graph, through spandrel.

spandrel (MIT) recognises an architecture from a state dict's keys and shapes and builds
its PyTorch module. fastsr hands it a state dict it has already read safely (no pickle
code runs; `from_weights` reads the file), captures the module into the IR when every
op is one fastsr has kernels for, and otherwise wraps the whole module in one
`torch_module` node that the reference backend runs in PyTorch: slower, but every front
door (tiling, colour, alpha, video, CLI) still works.

spandrel's package imports torchvision at import time, for two architectures that are
not super-resolution (LaMa inpainting, RestoreFormer faces). Where torchvision cannot be
imported (no build of it matches the installed torch, e.g. a CPU-only torch from a local
wheel), spandrel is imported with a stand-in whose functions raise when called, so the
other architectures load; the stand-in is removed again at once.
"""

from __future__ import annotations

import copy
import math
import sys
import types
import warnings
from pathlib import Path

from fastsr.graph.grey import full_range_luma
from fastsr.graph.ir import Graph, GraphError, Node

INSTALL_HINT = "pip install --no-deps spandrel einops  (see the README: why --no-deps)"
_COLORS = {1: "y", 3: "rgb"}


class UnknownArchitecture(ValueError):
    """A state dict spandrel does not recognise (the message says what to do)."""


class TorchModule:
    """A module held by a `torch_module` node: shared, never copied, never serialised.

    `align`: tile offsets it needs (its size multiple, its attention window); its reach
    and memory are measured on first use (`fastsr.torch_reach`, `fastsr.torch_memory`)."""

    def __init__(self, call, description: str, channels: int, align: int = 1,
                 minimum: int = 0):
        self.call, self.description = call, description
        self.channels, self.align, self.minimum = channels, align, minimum
        self._reach = self._memory = None

    def reach(self) -> int:
        if self._reach is None:
            from fastsr.torch_reach import measure_reach

            self._reach = measure_reach(self.call, self.channels, self.align)
        return self._reach

    def peak_bytes(self, batch: int, height: int, width: int) -> int:
        if self._memory is None:
            from fastsr.torch_memory import probe

            self._memory = probe(self.call, self.channels, self.align, self.minimum)
        return self._memory.bytes(batch, height, width)

    def __deepcopy__(self, memo) -> TorchModule:
        return self

    def __repr__(self) -> str:
        return f"TorchModule({self.description})"


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    def missing(*args, **kwargs):
        raise ImportError(
            "this architecture needs torchvision, which cannot be imported here; install "
            "the torchvision build that matches your torch"
        )

    def attribute(name: str):  # PEP 562: any public name imports (as `missing`)
        if name.startswith("__"):  # what inspect and importlib probe
            raise AttributeError(name)
        return missing

    functional = types.ModuleType("torchvision.transforms.functional")
    functional.__getattr__ = attribute
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional
    root = types.ModuleType("torchvision")
    root.transforms = transforms
    return {"torchvision": root, "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional}


def import_spandrel():
    """The spandrel module, or ImportError saying how to install it."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    try:
        import torchvision  # noqa: F401
        stand_in = {}
    except Exception:  # missing, or a build for another torch ('torchvision::nms ...')
        stand_in = _torchvision_stand_in()
        for name in stand_in:
            sys.modules.pop(name, None)
    saved = {name: sys.modules.get(name) for name in stand_in}
    sys.modules.update(stand_in)
    try:
        import spandrel
    except ImportError as error:
        raise ImportError(
            f"this state dict is not one of fastsr's own architectures; loading other "
            f"architectures (Real-ESRGAN, SPAN, SwinIR ...) needs spandrel: {INSTALL_HINT} "
            f"({error})"
        ) from None
    else:
        _install_extra_arches()
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return spandrel


def _install_extra_arches() -> None:
    """spandrel_extra_arches' architectures (SRFormer, Restormer ...: non-commercial
    licences, so an optional extra) join spandrel's registry when the package is there."""
    try:
        import spandrel_extra_arches
    except ImportError:
        return
    spandrel_extra_arches.install(ignore_duplicates=True)


def describe(state: dict, source: Path):
    """spandrel's ImageModelDescriptor for `state`; ValueError if it is not an image model
    spandrel knows."""
    spandrel = import_spandrel()
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(
            spandrel.canonicalize_state_dict(state)
        )
    except spandrel.UnsupportedModelError:
        raise UnknownArchitecture(
            f"spandrel {spandrel.__version__} does not know it either; if it is one of "
            "spandrel_extra_arches (non-commercial licences), `pip install --no-deps "
            "spandrel_extra_arches`; otherwise export the model to ONNX, or pass the "
            "torch.nn.Module itself"
        ) from None
    except Exception as error:  # a recognised architecture whose tensors do not fit
        raise ValueError(f"{source}: spandrel could not build the model: {error}") from None
    descriptor.model.eval()  # spandrel hands it over in training mode
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ValueError(
            f"{source}: {descriptor.architecture.name} is a {type(descriptor).__name__} "
            "(it needs more than an image), which fastsr does not run"
        )
    return descriptor


def spandrel_meta(descriptor, source: Path) -> dict:
    """fastsr's meta for a descriptor: scale, colour and what the model asks of inputs."""
    channels = descriptor.input_channels
    if channels not in _COLORS or descriptor.output_channels != channels:
        raise ValueError(
            f"{source}: {descriptor.architecture.name} maps {channels} channels to "
            f"{descriptor.output_channels}; fastsr runs image models with 1 (grey) or 3 (RGB)"
        )
    req = descriptor.size_requirements
    return {
        "name": source.stem,
        "architecture": descriptor.architecture.name,
        "source": "spandrel",
        "scale": int(descriptor.scale),
        "color": _COLORS[channels],
        "size_requirements": {"minimum": req.minimum, "multiple_of": req.multiple_of,
                              "square": req.square},
        "supports_half": bool(descriptor.supports_half),
        "supports_bfloat16": bool(descriptor.supports_bfloat16),
        "tiling": descriptor.tiling.name.lower(),
    }


def load_spandrel(state: dict, source: Path) -> Graph:
    """The Graph of a state dict spandrel recognises: captured onto fastsr's kernels when it
    can be, else one `torch_module` node (meta["fallback"] says what blocked capture).
    A grey model is fed full-range luma (`fastsr.graph.grey`)."""
    from fastsr.graph.from_torch import capture

    descriptor = describe(state, source)
    meta = spandrel_meta(descriptor, source)
    try:
        graph = capture(_warmed_copy(descriptor), descriptor.input_channels, meta=meta,
                        pad_functions=_pad_functions())
    except GraphError as error:
        meta["fallback"] = str(error)
        graph = fallback_graph(descriptor, meta)
    return full_range_luma(graph) if graph.input_channels == 1 else graph


def _pad_functions() -> tuple:
    """spandrel's pad_to_multiple, which forwards call on their input (Real-ESRGAN x2/x1,
    RCAN): traced as one call, then applied to the whole frame (fastsr.padding)."""
    import importlib

    try:
        helpers = importlib.import_module("spandrel.architectures.__arch_helpers.padding")
    except ImportError:  # another spandrel layout: such models fall back to PyTorch
        return ()
    return (helpers.pad_to_multiple,)


def _warmed_copy(descriptor):
    """The module to trace: a copy (a failed trace can leave proxies in it: SPAN assigns
    self.mean), in eval mode, run once eagerly so that weights a forward derives from
    others (SPAN fuses each Conv3XC into its eval_conv) hold their values; under tracing
    that derivation only builds proxies."""
    import torch

    module = copy.deepcopy(descriptor.model).eval()
    req = descriptor.size_requirements
    side = max(16, req.minimum)
    side += -side % req.multiple_of
    with torch.no_grad():
        module(torch.zeros(1, descriptor.input_channels, side, side))
    return module


def fallback_graph(descriptor, meta: dict) -> Graph:
    """One node that runs spandrel's descriptor (which pads to the model's size
    requirements and crops back) in PyTorch."""
    channels = descriptor.input_channels
    req = descriptor.size_requirements
    window = getattr(descriptor.model, "window_size", 1)  # SwinIR, HAT: attention windows
    align = math.lcm(req.multiple_of, window if isinstance(window, int) else 1)
    module = TorchModule(descriptor, meta["architecture"], channels, align, req.minimum)
    node = Node(
        "torch_module", ["x"], "y",
        {"module": module, "scale": meta["scale"], "out_channels": descriptor.output_channels},
        meta["architecture"],
    )
    graph = Graph("x", channels, "y", [node], {}, meta)
    graph.validate()
    return graph


def needs_torch(graph: Graph) -> str | None:
    """Why the graph runs in PyTorch (the op that blocked capture), or None."""
    if any(node.op == "torch_module" for node in graph.nodes):
        return graph.meta.get("fallback", "the model could not be captured")
    return None


def warn_fallback(graph: Graph) -> None:
    reason = needs_torch(graph)
    warnings.warn(
        f"fastsr: {graph.meta.get('architecture', 'this model')} runs in PyTorch, not on "
        f"fastsr's kernels: {reason}",
        RuntimeWarning,
        stacklevel=3,
    )

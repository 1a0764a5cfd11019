"""fastsr's benchmark suite: the networks and cases of shapes.json, chosen by mode and env.

Quick mode (plain `pytest`) runs every case once on tiny sizes so parity is still checked;
full mode (`pytest benchmarks --benchmark-only`) runs the headline cases at 640x360, every
engine and precision side by side, within 10 minutes on 2 cores, and prints the comparison
tables at the end; FASTSR_BENCH_SWEEP=1 with it runs the sweep (every size and batch, the
per-layer, scaling, 8K-memory and Ray benchmarks, EDSR baseline and the heavy spandrel
networks). Environment overrides: FASTSR_BENCH_THREADS=2, FASTSR_BENCH_SIZES=640x360,1280x720,
FASTSR_BENCH_BATCHES=1,4, FASTSR_BENCH_MODELS=quality_x2,espcn_x2,
FASTSR_BENCH_RUNNERS=fastsr_cpu,onnxruntime, FASTSR_BENCH_MAX_GFLOP=1500.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import torch
from torch import nn

CONFIG_PATH = Path(__file__).with_name("shapes.json")
FASTSR_DIR = Path(__file__).resolve().parent.parent / "fastsr"
WEIGHTS_DIR = FASTSR_DIR / "weights"
TRAIN_CONFIGS = FASTSR_DIR / "train_configs.json"


@cache
def config() -> dict:
    return json.loads(CONFIG_PATH.read_text())


def sweep() -> bool:
    return os.environ.get("FASTSR_BENCH_SWEEP", "") not in ("", "0")


def mode(quick: bool) -> str:
    return "quick" if quick else "sweep" if sweep() else "full"


def by_mode(choices: dict, quick: bool):
    """choices[mode]: shapes.json gives a "sweep" entry only where it differs from "full"."""
    return choices.get(mode(quick), choices["full"])


def bench_threads() -> int:
    return int(os.environ.get("FASTSR_BENCH_THREADS", config()["threads"]))


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name, "").strip()
    return [item.strip() for item in value.split(",") if item.strip()] or None


def parse_size(text: str) -> tuple[int, int]:
    """'640x360' -> (640, 360): width then height."""
    width, height = text.lower().split("x")
    return int(width), int(height)


def selected_sizes(defaults: list[list[int]], quick: bool) -> list[tuple[int, int]]:
    """FASTSR_BENCH_SIZES in full mode, else the configured sizes."""
    chosen = _env_list("FASTSR_BENCH_SIZES")
    if chosen and not quick:
        return [parse_size(s) for s in chosen]
    return [tuple(size) for size in defaults]


def selected_batches(quick: bool) -> list[int]:
    chosen = _env_list("FASTSR_BENCH_BATCHES")
    if chosen and not quick:
        return [int(b) for b in chosen]
    return by_mode(config()["batches"], quick)


def selected_runners(quick: bool) -> list[str]:
    chosen = _env_list("FASTSR_BENCH_RUNNERS")
    return chosen or by_mode(config()["runners"], quick)


def max_gflop_per_call() -> float:
    default = config()["timing"]["max_gflop_per_call"]
    return float(os.environ.get("FASTSR_BENCH_MAX_GFLOP", default))


@dataclass(frozen=True)
class NetworkSpec:
    """A network to benchmark: an architecture, its args, and the weight file if shipped."""

    name: str
    architecture: str
    args: dict = field(hash=False)
    shipped: bool = False
    headline: bool = False
    sweep_only: bool = False

    @property
    def scale(self) -> int:
        return self.args["scale"]

    @property
    def in_channels(self) -> int:
        return build_network(self.name).in_channels

    @property
    def weights(self) -> str:
        return "shipped" if self.shipped else "random"


def _shipped_spec(name: str) -> NetworkSpec | None:
    json_path = WEIGHTS_DIR / f"{name}.json"
    if json_path.exists() and json_path.with_suffix(".safetensors").exists():
        shipped = json.loads(json_path.read_text())
        return NetworkSpec(name, shipped["architecture"], shipped["args"], shipped=True)
    # Not trained yet: the architecture it will have, with random weights.
    trained = json.loads(TRAIN_CONFIGS.read_text()) if TRAIN_CONFIGS.exists() else {}
    if name in trained:
        return NetworkSpec(name, trained[name]["architecture"], trained[name]["args"])
    return None


@cache
def network_specs() -> dict[str, NetworkSpec]:
    """Shipped models then reference networks, by name; FASTSR_BENCH_MODELS filters."""
    specs = {}
    for name in config()["shipped"]:
        spec = _shipped_spec(name)
        if spec is not None:
            specs[name] = spec
    for entry in config()["reference_networks"]:
        duplicate = next(
            (
                s
                for s in specs.values()
                if (s.architecture, s.args) == (entry["architecture"], entry["args"])
            ),
            None,
        )
        if duplicate is not None:  # the shipped model is this network: it carries the headline
            specs[duplicate.name] = NetworkSpec(
                duplicate.name,
                duplicate.architecture,
                duplicate.args,
                duplicate.shipped,
                headline=duplicate.headline or entry.get("headline", False),
            )
            continue
        specs[entry["name"]] = NetworkSpec(
            entry["name"],
            entry["architecture"],
            entry["args"],
            headline=entry.get("headline", False),
            sweep_only=entry.get("sweep_only", False),
        )
    chosen = _env_list("FASTSR_BENCH_MODELS")
    return {name: s for name, s in specs.items() if chosen is None or name in chosen}


def headline_network() -> str:
    return next(name for name, spec in network_specs().items() if spec.headline)


@dataclass(eq=False)  # hashed by identity: build_network makes one per name
class Network:
    spec: NetworkSpec
    module: nn.Module
    gflop_per_pixel: float  # analytic conv FLOPs per LR input pixel, in GFLOP

    @property
    def in_channels(self) -> int:
        """Image channels the network reads: those of its first convolution."""
        first = next(m for m in self.module.modules() if isinstance(m, nn.Conv2d))
        return first.in_channels


def randomise_batchnorm(module: nn.Module, generator: torch.Generator) -> None:
    """Give BatchNorm layers non-trivial statistics so folding them is really exercised."""
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            n = layer.num_features
            layer.running_mean.copy_((torch.rand(n, generator=generator) - 0.5) * 0.2)
            layer.running_var.copy_(0.5 + torch.rand(n, generator=generator))
            layer.weight.data.copy_(0.5 + torch.rand(n, generator=generator))
            layer.bias.data.copy_((torch.rand(n, generator=generator) - 0.5) * 0.2)


@cache
def build_network(name: str) -> Network:
    """The eval-mode module of a spec; ValueError/TypeError if the architecture is unknown."""
    from fastsr.models import build_model, macs_per_input_pixel

    spec = network_specs()[name]
    if spec.shipped:
        from fastsr.models.zoo import load_module

        module, _ = load_module(name)
    else:
        generator = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        module = build_model(spec.architecture, **spec.args)
        with torch.no_grad():
            randomise_batchnorm(module, generator)
    module = module.eval().requires_grad_(False)
    return Network(spec, module, 2 * macs_per_input_pixel(module) / 1e9)


@dataclass(frozen=True)
class ModelCase:
    network: str
    width: int
    height: int
    batch: int

    @property
    def label(self) -> str:
        return f"{self.network}-{self.width}x{self.height}-b{self.batch}"


def model_cases(quick: bool) -> list[ModelCase]:
    sizes = selected_sizes(by_mode(config()["sizes"], quick), quick)
    return [
        ModelCase(name, width, height, batch)
        for name, spec in network_specs().items()
        if not (spec.sweep_only and mode(quick) == "full")
        for width, height in sizes
        for batch in selected_batches(quick)
    ]


def case_input(batch: int, channels: int, height: int, width: int) -> torch.Tensor:
    """The same float32 NCHW frames in [0, 1) for every runner of a case."""
    generator = torch.Generator().manual_seed(1234)
    return torch.rand(batch, channels, height, width, generator=generator)


def first_call(fn, arg):
    """(result, seconds) of one untimed call: the warm-up whose output parity checks use."""
    start = time.perf_counter()
    result = fn(arg)
    return result, time.perf_counter() - start

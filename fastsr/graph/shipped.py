"""The shipped models in fastsr/weights, loaded from their serialised graphs.

Each model is `<name>.json` (config: architecture, args, scale, colour, training record,
scores), `<name>.safetensors` (the training module's state_dict) and
`<name>.graph.safetensors`: the optimised graph that `export_graph` rebuilds from the
other two. `fastsr.models.zoo.save_module` calls it whenever weights are saved, so a
retrained model ships a fresh graph; `python -m fastsr.graph.shipped` rewrites them all.
Loading a graph file needs numpy and safetensors only: no torch, no tracing, no passes.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastsr.graph.ir import Graph
from fastsr.graph.serialize import SUFFIX, load_graph, save_graph

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights"
_CONFIG_KEYS = ("architecture", "args", "scale", "color")


def load_config(json_path: str | Path) -> dict:
    """A model config (architecture, args, scale, color, ...); ValueError if malformed."""
    json_path = Path(json_path)
    try:
        config = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{json_path}: not a readable model config: {error}") from None
    missing = [key for key in _CONFIG_KEYS if not isinstance(config, dict) or key not in config]
    if missing:
        raise ValueError(f"{json_path}: model config lacks {missing}")
    if config["color"] not in ("rgb", "y"):
        raise ValueError(f"{json_path}: color must be 'rgb' or 'y', got {config['color']!r}")
    config.setdefault("name", json_path.stem)
    return config


def shipped() -> dict[str, Path]:
    """Shipped model name -> its JSON config, for every model whose weights are present."""
    return {
        json_path.stem: json_path
        for json_path in SHIPPED_DIR.glob("*.json")
        if json_path.with_suffix(".safetensors").is_file()
    }


def graph_path(json_path: Path) -> Path:
    return json_path.with_suffix(SUFFIX)


def load_shipped(json_path: Path) -> Graph:
    """The model's serialised graph, or (no graph file yet) its weights rebuilt and captured."""
    if graph_path(json_path).is_file():
        return load_graph(graph_path(json_path))
    from fastsr.graph.from_weights import load_weights

    return load_weights(json_path.with_suffix(".safetensors"))


def rebuild_graph(json_path: Path) -> Graph:
    """What the graph file must hold: the weights loaded into their module, captured, optimised."""
    from fastsr.graph.from_weights import load_weights
    from fastsr.graph.passes import optimize

    return optimize(load_weights(json_path.with_suffix(".safetensors")))


def export_graph(json_path: Path) -> Path:
    """Write the serialised graph of the model configured at `json_path`; returns its path."""
    return save_graph(rebuild_graph(json_path), graph_path(json_path))


def main() -> None:
    for name, json_path in sorted(shipped().items()):
        print(f"{name}: wrote {export_graph(json_path)}")


if __name__ == "__main__":
    main()

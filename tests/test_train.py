import json

import numpy as np
import pytest
import torch
from PIL import Image

from fastsr import train
from fastsr.backends.reference import run_graph
from fastsr.data import PatchSampler
from fastsr.graph.serialize import load_graph
from fastsr.models import build_model
from fastsr.models.zoo import load_module

TINY = {
    "architecture": "srnet",
    "args": {"scale": 2, "channels": 4, "blocks": 1, "color": "rgb"},
    "lr": 1e-3,
    "loss": "l1",
    "batch": 2,
    "patch": 8,
    "steps": 5,
}


@pytest.fixture
def folders(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for folder, size in [("train/T91", 40), ("val/Set5", 24)]:
        (tmp_path / folder).mkdir(parents=True)
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(image).save(tmp_path / folder / "a.png")
    monkeypatch.setenv("FASTSR_DATA", str(tmp_path / "val"))
    monkeypatch.setitem(train.CONFIGS, "tiny", TINY)
    return tmp_path


def _run(folders, out, *extra):
    base = ["--config", "tiny", "--out", str(out), "--train-dir", str(folders / "train")]
    train.train(train.parse_args(base + ["--weights-dir", str(folders / "weights"), *extra]))
    return torch.load(out / "checkpoint.pt", weights_only=False)


def test_interrupted_and_resumed_run_equals_uninterrupted_run(folders):
    straight = _run(folders, folders / "straight", "--no-export")
    first = _run(folders, folders / "resumed", "--no-export", "--max-minutes", "0")
    assert first["state"]["step"] == 1
    resumed = _run(folders, folders / "resumed", "--no-export", "--resume")
    assert resumed["state"]["step"] == straight["state"]["step"] == TINY["steps"]
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name


def test_exported_weights_load_and_record_their_training(folders):
    _run(folders, folders / "export")
    module, config = load_module(folders / "weights" / "tiny.json")
    assert config["training"]["steps"] == TINY["steps"]
    assert config["args"] == TINY["args"]
    assert set(config["validation"]) == {"Set5"}
    x = torch.rand(1, 3, 5, 5)
    assert module(x).shape == (1, 3, 10, 10)
    graph = load_graph(folders / "weights" / "tiny.graph.safetensors")  # retraining rewrites it
    with torch.no_grad():
        torch.testing.assert_close(run_graph(graph, x), module(x), atol=1e-5, rtol=0)


def test_fine_tuning_starts_from_the_weights_and_keeps_their_lineage(folders, monkeypatch):
    monkeypatch.setitem(train.CONFIGS, "tiny_tuned", TINY)
    _run(folders, folders / "first")
    first, _ = load_module(folders / "weights" / "tiny.json")
    second = ["--config", "tiny_tuned", "--init-from", "tiny", "--steps", "1"]
    checkpoint = _run(folders, folders / "second", *second)
    _, config = load_module(folders / "weights" / "tiny_tuned.json")
    assert config["training"]["init_from"] == "tiny"
    assert config["training"]["init_training"]["steps"] == TINY["steps"]
    assert config["training"]["steps"] == 1
    # One Adam step moves each weight by at most about lr, so the run started from `first`.
    for name, tensor in first.named_parameters():
        assert torch.allclose(checkpoint["model"][name], tensor, atol=2 * TINY["lr"]), name


def test_fine_tuning_in_place_replaces_the_weights_only_when_validation_improves(folders):
    _run(folders, folders / "first")
    config_path = folders / "weights" / "tiny.json"
    config = json.loads(config_path.read_text())
    config["validation"]["Set5"]["psnr"] = 99.0  # better than any further training can score
    config_path.write_text(json.dumps(config))
    weights = (folders / "weights" / "tiny.safetensors").read_bytes()
    _run(folders, folders / "second", "--init-from", "tiny", "--steps", "2")
    assert (folders / "weights" / "tiny.safetensors").read_bytes() == weights
    assert json.loads(config_path.read_text())["training"]["steps"] == TINY["steps"]


def test_batchnorm_statistics_become_exact_averages_over_fixed_batches(folders):
    model = build_model("srnet", **TINY["args"])
    sampler = PatchSampler([folders / "train" / "T91"], scale=2, lr_patch=8)
    train.recompute_batchnorm_statistics(model, sampler, batch=3, color="rgb")
    rng = np.random.default_rng(train.STATISTICS_SEED)
    with torch.no_grad():
        batches = [sampler.sample(3, rng)[0] for _ in range(train.STATISTICS_BATCHES)]
        features = [model.head[0](batch) for batch in batches]
    norm = model.head[1]
    expected_mean = torch.stack([f.mean((0, 2, 3)) for f in features]).mean(0)
    expected_var = torch.stack([f.var((0, 2, 3)) for f in features]).mean(0)
    torch.testing.assert_close(norm.running_mean, expected_mean)
    torch.testing.assert_close(norm.running_var, expected_var)
    assert norm.momentum == 0.1  # training goes on with the usual momentum


def test_qat_fine_tuning_freezes_batchnorm_and_records_itself(folders):
    _run(folders, folders / "first")
    first, _ = load_module(folders / "weights" / "tiny.json")
    with pytest.raises(ValueError, match="--init-from"):
        _run(folders, folders / "qat", "--qat")
    checkpoint = _run(folders, folders / "qat", "--qat", "--init-from", "tiny", "--no-export")
    assert len(checkpoint["qat_ranges"]) == 3  # the block's two convs and the tail, not the head
    assert checkpoint["recipe"]["qat"]["estimator"] == "percentile"
    for name, tensor in first.state_dict().items():
        if "running" in name:  # the int8 kernels get the weights the frozen statistics fold
            assert torch.equal(checkpoint["model"][name], tensor), name

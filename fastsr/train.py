"""Train a zoo model: `python -m fastsr.train --config fast_x2 [--resume] [--max-minutes M]`.

Checkpoints (model, optimizer, schedule, step, sampler RNG) go to `--out` every few
minutes; the best weights so far by validation PSNR are exported to `fastsr/weights/`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from fastsr.color import rgb_to_y
from fastsr.data import PatchSampler
from fastsr.evaluate import default_data_dir, evaluate
from fastsr.models import build_model, macs_per_input_pixel
from fastsr.models.zoo import WEIGHTS_DIR, save_module, torch_upscaler
from fastsr.qat import ESTIMATOR, QATNet
from fastsr.quantize import calibration_inputs

TRAIN_DIR = Path("/work/shared/datasets/train")
TRAIN_SETS = ["T91", "General100", "BSD200"]
CHECKPOINT_ROOT = Path("/work/ckpt")
CALIBRATION = "16 LR crops of 96 from the training images, seed 0 (quantize.calibration_inputs)"

CONFIGS = json.loads((Path(__file__).resolve().parent / "train_configs.json").read_text())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, choices=sorted(CONFIGS))
    parser.add_argument("--out", type=Path, help="checkpoint dir (default /work/ckpt/<config>)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--max-minutes", type=float, help="stop (after checkpointing) after this")
    parser.add_argument("--steps", type=int, help="override the config's total steps")
    parser.add_argument("--lr", type=float, help="override the config's learning rate")
    parser.add_argument("--loss", choices=["l1", "mse"], help="override the config's loss")
    parser.add_argument("--init-from", help="start from these shipped weights (fine-tuning)")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--train-dir", type=Path, default=TRAIN_DIR, help="holds T91/ etc.")
    parser.add_argument("--no-export", action="store_true", help="experiments: never export")
    # Without AMX/avx512_bf16 (this machine) bf16 autocast measured 1.5-3x slower than fp32.
    parser.add_argument("--bf16", action="store_true", help="train under bf16 autocast")
    parser.add_argument(
        "--qat", action="store_true", help="fine-tune through int8 fake-quant (fastsr.qat)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--val-minutes", type=float, default=8.0)
    parser.add_argument("--ckpt-minutes", type=float, default=4.0)
    parser.add_argument("--log-every", type=int, default=200)
    return parser.parse_args(argv)


def recipe(args: argparse.Namespace) -> dict:
    config = dict(CONFIGS[args.config])
    for key in ("steps", "lr", "loss", "init_from"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.qat:
        if not config.get("init_from"):
            raise ValueError("--qat fine-tunes trained weights: give --init-from")
        config["qat"] = {"estimator": ESTIMATOR, "calibration": CALIBRATION}
    return config


def _score(validation: dict) -> float:
    return sum(s["psnr"] for s in validation.values()) if validation else float("-inf")


def init_from_weights(model: torch.nn.Module, name: str, weights_dir: Path) -> dict:
    """Copy every tensor of a trained model whose name and shape match (e.g. x2 body into x4);
    returns that model's JSON config, so the exported lineage stays complete."""
    path = weights_dir / f"{name}.safetensors"
    if not path.exists():
        print(f"init: {path} absent, starting from scratch", flush=True)
        return {}
    own = model.state_dict()
    matching = {k: v for k, v in load_file(path).items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    print(f"init: {len(matching)}/{len(own)} tensors from {name}", flush=True)
    return json.loads(path.with_suffix(".json").read_text())


# Fixed batches (own seed, so the training stream is untouched) whose exact BatchNorm
# statistics replace the momentum averages before each validation.
STATISTICS_BATCHES = 50
STATISTICS_SEED = 1


@torch.no_grad()
def recompute_batchnorm_statistics(
    model: torch.nn.Module, sampler: PatchSampler, batch: int, color: str
) -> None:
    """Set every BatchNorm's running mean and variance to their averages over fixed training
    batches. The momentum averages trail the weights while the learning rate is high: on the
    x4 SRNet they cost up to 3 dB on single smooth images (Set14 lenna, pepper)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    rng = np.random.default_rng(STATISTICS_SEED)
    model.train()
    for _ in range(STATISTICS_BATCHES if norms else 0):
        lr_batch, _ = sampler.sample(batch, rng)
        if color == "y":
            lr_batch = rgb_to_y(lr_batch, 1)
        model(lr_batch.contiguous(memory_format=torch.channels_last))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum


def validate(model: torch.nn.Module, color: str, scale: int) -> dict:
    """Scores of `model` (or of a QATNet over it, in its int8 arithmetic)."""
    model.eval()
    results = evaluate(torch_upscaler(model, color), default_data_dir(), scale, bicubic=False)
    model.train()
    return {dataset: summary["model"] for dataset, summary in results.items()}


def export(model, name: str, rec: dict, state: dict, validation: dict, weights_dir: Path) -> None:
    args = dict(rec["args"])
    config = {
        "name": name,
        "architecture": rec["architecture"],
        "args": args,
        "scale": args["scale"],
        "color": args.get("color", "rgb"),
        "params": sum(p.numel() for p in model.parameters()),
        "macs_per_input_pixel": macs_per_input_pixel(model.eval()),
        "training": {
            "datasets": TRAIN_SETS,
            "held_out": ["BSD200/302003 (Set5 woman)"],
            "steps": state["step"],
            "total_steps": rec["steps"],
            "seconds": round(state["seconds"]),
            "loss": rec["loss"],
            "lr": rec["lr"],
            "schedule": "cosine to lr/100",
            "batch": rec["batch"],
            "lr_patch": rec["patch"],
            "init_from": rec.get("init_from"),
            "init_training": rec.get("init_training"),
            "precision": "bf16 autocast" if state["bf16"] else "fp32",
            "qat": rec.get("qat"),
        },
        "validation": validation,
    }
    model.train()
    save_module(model, config, weights_dir)


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    out = args.out or CHECKPOINT_ROOT / args.config
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / "checkpoint.pt"
    resuming = args.resume and checkpoint_path.exists()
    saved = torch.load(checkpoint_path, weights_only=False) if resuming else None
    # A resumed run keeps the recipe it started with, even if the config file changed since.
    rec = saved["recipe"] if resuming else recipe(args)
    scale, color = rec["args"]["scale"], rec["args"].get("color", "rgb")

    torch.manual_seed(rec.get("seed", 0))
    model = build_model(rec["architecture"], **rec["args"])
    optimizer = torch.optim.Adam(model.parameters(), lr=rec["lr"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, rec["steps"], rec["lr"] / 100)
    sampler = PatchSampler([args.train_dir / s for s in TRAIN_SETS], scale, rec["patch"], seed=0)
    state = {"step": 0, "seconds": 0.0, "best": float("-inf"), "bf16": args.bf16}
    if resuming:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        sampler.restore(saved["sampler"])
        torch.set_rng_state(saved["torch_rng"])
        state = saved["state"]
        print(f"resumed at step {state['step']}", flush=True)
    elif rec.get("init_from"):
        init = init_from_weights(model, rec["init_from"], args.weights_dir)
        rec["init_training"] = init.get("training")
        if rec["init_from"] == args.config:
            # Fine-tuning in place: only weights that beat the ones we started from replace them.
            state["best"] = _score(init.get("validation", {}))
    model = model.to(memory_format=torch.channels_last).train()
    net = model
    if rec.get("qat"):
        # BatchNorm statistics stay frozen: the int8 kernels get the weights they fold into.
        net = QATNet(model)
        channels = 1 if color == "y" else 3
        calibration = calibration_inputs(args.train_dir, scale, channels)
        if resuming:
            net.set_ranges(saved["qat_ranges"])
        else:
            net.calibrate(calibration)
            # Only weights whose int8 arithmetic beats the weights we started from are exported.
            state["best"] = _score(validate(net, color, scale))
            print(f"qat: int8 fake-quant validation at start {state['best']:.3f}", flush=True)
    loss_fn = F.l1_loss if rec["loss"] == "l1" else F.mse_loss

    def save_checkpoint() -> None:
        saved = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "sampler": sampler.state(),
            "torch_rng": torch.get_rng_state(),
            "state": state,
            "recipe": rec,
        }
        if net is not model:
            saved["qat_ranges"] = net.ranges()
        torch.save(saved, out / "checkpoint.tmp")
        (out / "checkpoint.tmp").replace(checkpoint_path)

    def run_validation() -> None:
        nonlocal validated_step
        validated_step = state["step"]
        if net is model:
            recompute_batchnorm_statistics(model, sampler, rec["batch"], color)
        scores = validate(model, color, scale)
        line = " ".join(f"{d} {s['psnr']:.3f}/{s['ssim']:.4f}" for d, s in scores.items())
        score = _score(scores)
        if net is not model:
            net.calibrate(calibration)
            int8 = validate(net, color, scale)
            line += " int8 " + " ".join(f"{d} {s['psnr']:.3f}" for d, s in int8.items())
            score = _score(int8)
        improved = score > state["best"]
        print(f"step {state['step']} validation {line}{' (best)' if improved else ''}", flush=True)
        if improved:
            state["best"] = score
            if not args.no_export:
                export(model, args.config, rec, state, scores, args.weights_dir)

    session_start = time.monotonic()
    last_val = last_ckpt = last_log = session_start
    log_step, running_loss = state["step"], 0.0
    validated_step = None
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16) if state["bf16"] else contextlib.nullcontext()
    )
    while state["step"] < rec["steps"]:
        step_start = time.monotonic()
        lr_batch, hr_batch = sampler.sample(rec["batch"])
        if color == "y":
            lr_batch, hr_batch = rgb_to_y(lr_batch, 1), rgb_to_y(hr_batch, 1)
        lr_batch = lr_batch.contiguous(memory_format=torch.channels_last)
        with autocast:
            prediction = net(lr_batch)
        loss = loss_fn(prediction.float(), hr_batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        state["step"] += 1
        state["seconds"] += time.monotonic() - step_start
        running_loss += loss.item()

        now = time.monotonic()
        if state["step"] % args.log_every == 0:
            rate = (state["step"] - log_step) / (now - last_log)
            mean_loss = running_loss / (state["step"] - log_step)
            eta_min = (rec["steps"] - state["step"]) / rate / 60
            print(
                f"step {state['step']}/{rec['steps']} loss {mean_loss:.5f} "
                f"lr {schedule.get_last_lr()[0]:.2e} {rate:.1f} it/s ETA {eta_min:.0f} min",
                flush=True,
            )
            log_step, running_loss, last_log = state["step"], 0.0, now
        if now - last_val > args.val_minutes * 60:
            run_validation()
            last_val = now
        if now - last_ckpt > args.ckpt_minutes * 60:
            save_checkpoint()
            last_ckpt = now
        if args.max_minutes is not None and now - session_start > args.max_minutes * 60:
            break
    if validated_step != state["step"]:
        run_validation()
    save_checkpoint()
    print(
        f"stopped at step {state['step']}/{rec['steps']}, {state['seconds'] / 60:.1f} min trained",
        flush=True,
    )


if __name__ == "__main__":
    train(parse_args())

"""Tile configurations as data: fitting them to a layer, and autotuning them on GPUs.

A config is a dict of BLOCK_* sizes plus num_warps / num_stages. Kernel files keep
their lists in a CONFIGS table ({"gpu": [...], "interpreter": [one]}); the first GPU
config is the default that the ahead-of-time check compiles.
"""

from __future__ import annotations

import triton

LAUNCH_KEYS = ("num_warps", "num_stages")
MIN_DOT = 16  # tl.dot needs every tile dimension >= 16


def _pow2_at_least_16(n: int) -> int:
    return max(MIN_DOT, triton.next_power_of_2(n))


def fit_tile(configs: list[dict], k_per_step: int, n: int) -> list[dict]:
    """Configs with BLOCK_K / BLOCK_N no wider than the layer needs, duplicates dropped.

    A 12-channel tail conv gets BLOCK_N = 16 rather than 64 masked-off lanes.
    """
    fitted = []
    for config in configs:
        config = dict(config, BLOCK_K=min(config["BLOCK_K"], _pow2_at_least_16(k_per_step)),
                      BLOCK_N=min(config["BLOCK_N"], _pow2_at_least_16(n)))
        if config not in fitted:
            fitted.append(config)
    return fitted


def _to_triton(config: dict) -> triton.Config:
    blocks = {k: v for k, v in config.items() if k not in LAUNCH_KEYS}
    return triton.Config(blocks, num_warps=config["num_warps"], num_stages=config["num_stages"])


def _from_triton(config: triton.Config) -> dict:
    return {**config.kwargs, "num_warps": config.num_warps, "num_stages": config.num_stages}


def tuned(kernel, configs: list[dict], fit, key: list[str]):
    """`kernel` autotuned over `configs`; fit(configs, launch_args) adapts them to a layer
    before any is timed, so every layer is tuned only over tiles that suit it."""

    def prune(triton_configs, named_args, **kwargs):
        fitted = fit([_from_triton(c) for c in triton_configs], {**named_args, **kwargs})
        return [_to_triton(c) for c in fitted]

    return triton.autotune([_to_triton(c) for c in configs], key=key,
                           prune_configs_by={"early_config_prune": prune})(kernel)

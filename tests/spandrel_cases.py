"""Small random-weight models of spandrel's architectures, built from spandrel's own
classes (no downloads): the cases of tests/test_spandrel.py and the benchmark.

Each case: name -> (factory, input channels, path fastsr takes: "kernels" or "torch").
"""

from __future__ import annotations

import torch

from fastsr.graph.from_spandrel import import_spandrel


def _arch(name: str):
    import_spandrel()  # the torchvision stand-in where torchvision cannot be imported
    import importlib

    return importlib.import_module(f"spandrel.architectures.{name}")


SPANDREL_CASES = {
    "compact_prelu_x2": (lambda: _arch("Compact").Compact(
        num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=4, upscale=2, act_type="prelu"),
        3, "kernels"),
    "compact_prelu_x4": (lambda: _arch("Compact").Compact(
        num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=4, upscale=4, act_type="prelu"),
        3, "kernels"),
    # grey (1 channel): fed full-range luma, a grey image unchanged (fastsr.graph.grey)
    "compact_grey_x2": (lambda: _arch("Compact").Compact(
        num_in_ch=1, num_out_ch=1, num_feat=16, num_conv=4, upscale=2, act_type="prelu"),
        1, "kernels"),
    "esrgan_x4": (lambda: _arch("ESRGAN").ESRGAN(num_filters=16, num_blocks=2, scale=4),
                  3, "kernels"),
    # Real-ESRGAN x2 / x1: pixel-unshuffle by 2 / 4 in front of an x4 RRDB; the forward
    # pads to a multiple of the factor (fastsr pads the frame instead: fastsr.padding).
    "esrgan_x2_unshuffle": (lambda: _arch("ESRGAN").ESRGAN(
        in_nc=12, out_nc=3, num_filters=16, num_blocks=1, scale=4, shuffle_factor=2),
        3, "kernels"),
    "esrgan_grey_x2_unshuffle": (lambda: _arch("ESRGAN").ESRGAN(
        in_nc=4, out_nc=1, num_filters=16, num_blocks=1, scale=4, shuffle_factor=2),
        1, "kernels"),
    "esrgan_x1_unshuffle": (lambda: _arch("ESRGAN").ESRGAN(
        in_nc=48, out_nc=3, num_filters=16, num_blocks=1, scale=4, shuffle_factor=4),
        3, "kernels"),
    "span_x4": (lambda: _arch("SPAN").SPAN(num_in_ch=3, num_out_ch=3, feature_channels=16,
                                           upscale=4), 3, "kernels"),
    "safmn_x2": (lambda: _arch("SAFMN").SAFMN(dim=8, n_blocks=1, upscaling_factor=2),
                 3, "torch"),
    "rcan_x2": (lambda: _arch("RCAN").RCAN(n_resgroups=1, n_resblocks=1, n_feats=16, scale=2),
                3, "kernels"),
    "omnisr_x2": (lambda: _arch("OmniSR").OmniSR(num_feat=16, up_scale=2), 3, "torch"),
    "swinir_x2": (lambda: _arch("SwinIR").SwinIR(
        upscale=2, img_size=16, window_size=8, embed_dim=12, depths=[2], num_heads=[2],
        upsampler="pixelshuffle", mlp_ratio=2), 3, "torch"),
}


def build(name: str) -> torch.nn.Module:
    factory = SPANDREL_CASES[name][0]
    torch.manual_seed(sum(map(ord, name)))
    return factory().eval()

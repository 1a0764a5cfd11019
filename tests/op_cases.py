"""Small PyTorch modules covering every IR op: the cases the backend harness runs.

Each case is (name, module factory, input channels). Modules are built with a fixed
seed; BatchNorm statistics are randomised so that folding is really exercised.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def randomize_batchnorm(module: nn.Module) -> nn.Module:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return module.eval()


class ConvBnAct(nn.Module):
    def __init__(self, cin=3, cout=16, k=3, act=None, dilation=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act or nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class ResidualBlock(nn.Module):
    def __init__(self, c=8, res_scale=1.0):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1)
        self.c2 = nn.Conv2d(c, c, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.c2(F.relu(self.c1(x))) * self.res_scale


class ShuffleTailWithBicubicSkip(nn.Module):
    def __init__(self, c=3, r=2):
        super().__init__()
        self.body = nn.Conv2d(c, 8, 3, padding=1)
        self.tail = nn.Conv2d(8, c * r * r, 3, padding=1)
        self.shuffle = nn.PixelShuffle(r)
        self.r = r

    def forward(self, x):
        skip = F.interpolate(x, scale_factor=self.r, mode="bicubic", align_corners=False)
        return self.shuffle(self.tail(torch.relu(self.body(x)))) + skip


class ChannelAttention(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.down = nn.Conv2d(c, 2, 1)
        self.up = nn.Conv2d(2, c, 1)

    def forward(self, x):
        y = self.conv(x)
        return y * torch.sigmoid(self.up(F.relu(self.down(self.pool(y))))) + x


class DenseConcat(nn.Module):
    def __init__(self, c=4, growth=4):
        super().__init__()
        self.c1 = nn.Conv2d(c, growth, 3, padding=1)
        self.c2 = nn.Conv2d(c + growth, growth, 3, padding=1)
        self.fuse = nn.Conv2d(c + 2 * growth, c, 1)

    def forward(self, x):
        a = F.leaky_relu(self.c1(x), 0.2)
        b = F.leaky_relu(self.c2(torch.cat([x, a], 1)), 0.2)
        return self.fuse(torch.cat([x, a, b], 1)) + x


class BackProjection(nn.Module):
    """Up-projection unit: transposed conv up, strided conv down, error fed back."""

    def __init__(self, c=4):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(c, c, 6, stride=2, padding=2)
        self.down = nn.Conv2d(c, c, 6, stride=2, padding=2)
        self.up2 = nn.ConvTranspose2d(c, c, 6, stride=2, padding=2)
        self.act = nn.PReLU(c)

    def forward(self, x):
        h0 = self.act(self.up1(x))
        err = self.act(self.down(h0)) - x
        return self.act(self.up2(err)) + h0


class FsrcnnLike(nn.Module):
    def __init__(self, r=3):
        super().__init__()
        self.feat = nn.Conv2d(1, 12, 5, padding=2)
        self.act = nn.PReLU(12)
        self.mid = nn.Conv2d(12, 12, 3, padding=1)
        self.act2 = nn.PReLU()
        self.deconv = nn.ConvTranspose2d(12, 1, 9, stride=r, padding=4, output_padding=r - 1)

    def forward(self, x):
        return self.deconv(self.act2(self.mid(self.act(self.feat(x)))))


class PointwiseMix(nn.Module):
    """Mean shift, scalar arithmetic, tanh/sigmoid/clamp, bilinear and nearest resize."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4, 0.45, 0.5]).view(1, 3, 1, 1))
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = self.conv((x - self.mean) * 2.0)
        y = torch.tanh(y) + torch.sigmoid(y) - 0.5
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        z = F.interpolate(x, scale_factor=2, mode="nearest")
        return torch.clamp(y + z, -1.0, 2.0)


class PixelShuffleAlone(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)

    def forward(self, x):
        return F.pixel_shuffle(torch.relu(self.conv(x)) + 0.1, 2)


class UnshuffleBody(nn.Module):
    """Real-ESRGAN x2 / x1 style: pixel-unshuffle the input, convs at the low size, shuffle
    back up by more than the unshuffle took."""

    def __init__(self, down=2, up=4, functional=False):
        super().__init__()
        self.unshuffle = (lambda x: F.pixel_unshuffle(x, down)) if functional else (
            nn.PixelUnshuffle(down))
        self.body = nn.Conv2d(3 * down * down, 8, 3, padding=1)
        self.tail = nn.Conv2d(8, 3 * up * up, 3, padding=1)
        self.up = up

    def forward(self, x):
        y = self.unshuffle(x)
        return F.pixel_shuffle(self.tail(F.leaky_relu(self.body(y), 0.2)), self.up)


class ShuffleTanh(nn.Module):
    """ESPCN-like: tanh convs, the last one's tanh fused with its pixel-shuffle scatter."""

    def __init__(self, c=3, r=2):
        super().__init__()
        self.body = nn.Conv2d(c, 8, 5, padding=2)
        self.tail = nn.Conv2d(8, c * r * r, 3, padding=1)
        self.r = r

    def forward(self, x):
        return F.pixel_shuffle(torch.tanh(self.tail(torch.tanh(self.body(x)))), self.r)


class WinogradBlock(nn.Module):
    """3x3 convs of 32 and 48 channels in and out, which the CPU backend runs as Winograd
    F(4x4, 3x3): PReLU, tanh and a residual add around them."""

    def __init__(self, c=3, width=32):
        super().__init__()
        self.head = nn.Conv2d(c, width, 3, padding=1)
        self.body1 = nn.Conv2d(width, 48, 3, padding=1)
        self.body2 = nn.Conv2d(48, width, 3, padding=1)
        self.act = nn.PReLU(48)
        self.tail = nn.Conv2d(width, c, 3, padding=1)

    def forward(self, x):
        h = torch.relu(self.head(x))
        h = h + torch.tanh(self.body2(self.act(self.body1(h))))
        return self.tail(h)


class WinogradShuffleTail(nn.Module):
    """Pixel-shuffled 3x3 convs of 32 channels in and 48 out, which the CPU backend runs as
    Winograd into a pre-shuffle buffer: the activation, then the shuffle, then a skip that
    may share the output's buffer (the add is not the graph output)."""

    def __init__(self, c=3, width=32, r=4):
        super().__init__()
        self.head = nn.Conv2d(c, width, 3, padding=1)
        self.side = nn.Conv2d(width, c * r * r, 3, padding=1)
        self.tail = nn.Conv2d(width, c * r * r, 3, padding=1)
        self.r = r

    def forward(self, x):
        h = torch.relu(self.head(x))
        side = F.pixel_shuffle(self.side(h), self.r)
        return torch.clamp(F.pixel_shuffle(torch.tanh(self.tail(h)), self.r) + side, -1, 1)


class SiluGate(nn.Module):
    """SPAN's attention block: SiLU convs (fused into the epilogue, and one standalone)
    and the parameter-free gate (y + x) * (sigmoid(y) - 0.5)."""

    def __init__(self, c=12):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1)
        self.c2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        y = self.c2(F.silu(self.c1(x)))
        z = nn.functional.silu(y + x)
        return (z + x) * (torch.sigmoid(y) - 0.5)


class SpanBlock(nn.Module):
    """SPAN's block as spandrel writes it: three convs (SiLU on the first two), then the
    gated skip (y + x) * (sigmoid(y) - 0.5), which fuse_gate puts in the last conv's
    epilogue. At 32 channels the CPU backend runs the convs as Winograd."""

    def __init__(self, c=12):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1)
        self.c2 = nn.Conv2d(c, c, 3, padding=1)
        self.c3 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        y = self.c3(F.silu(self.c2(F.silu(self.c1(x)))))
        return (y + x) * (torch.sigmoid(y) - 0.5)


class TanhGate(nn.Module):
    """A gated skip with the gate alone (no affine after it) and the skip on the left."""

    def __init__(self, c=20):
        super().__init__()
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.conv = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h = torch.relu(self.head(x))
        y = self.conv(h)
        return torch.tanh(y) * (h + y)


OP_CASES = {
    "conv_bn_relu": (lambda: ConvBnAct(), 3),
    "conv5_prelu_y": (lambda: ConvBnAct(1, 8, 5, nn.PReLU(8)), 1),
    "conv9_tanh": (lambda: ConvBnAct(3, 4, 9, nn.Tanh()), 3),
    # Channel counts with full and partial vectors at 8 and 16 lanes.
    "conv_tanh_36": (lambda: ConvBnAct(4, 36, 3, nn.Tanh()), 4),
    "conv_sigmoid_20": (lambda: ConvBnAct(3, 20, 3, nn.Sigmoid()), 3),
    "shuffle_tanh": (lambda: ShuffleTanh(), 3),
    "dilated_conv": (lambda: ConvBnAct(8, 8, 3, nn.LeakyReLU(0.1), dilation=2), 8),
    "residual_block": (lambda: ResidualBlock(8, res_scale=0.5), 8),
    "shuffle_bicubic_skip": (lambda: ShuffleTailWithBicubicSkip(3, 2), 3),
    "shuffle_bicubic_skip_x4": (lambda: ShuffleTailWithBicubicSkip(1, 4), 1),
    "channel_attention": (lambda: ChannelAttention(8), 8),
    "dense_concat": (lambda: DenseConcat(), 4),
    "back_projection": (lambda: BackProjection(), 4),
    "fsrcnn_like": (lambda: FsrcnnLike(3), 1),
    "pointwise_mix": (lambda: PointwiseMix(), 3),
    "pixel_shuffle_alone": (lambda: PixelShuffleAlone(), 3),
    "winograd_block": (lambda: WinogradBlock(), 3),
    "winograd_shuffle_tail": (lambda: WinogradShuffleTail(), 3),
    "silu_gate": (lambda: SiluGate(), 12),
    "span_block": (lambda: SpanBlock(12), 12),
    "span_block_winograd": (lambda: SpanBlock(32), 32),
    "tanh_gate": (lambda: TanhGate(), 3),
    "unshuffle_x2_body": (lambda: UnshuffleBody(2, 4, functional=True), 3),
    "unshuffle_x4_body": (lambda: UnshuffleBody(4, 4), 3),
}
# Cases whose input sides must be a multiple of this (pixel-unshuffle by 4 at most).
SIZE_MULTIPLE = {"unshuffle_x2_body": 2, "unshuffle_x4_body": 4}


def case_size(name: str, h: int, w: int) -> tuple[int, int]:
    """(h, w) rounded up to the size the case's network accepts."""
    m = SIZE_MULTIPLE.get(name, 1)
    return -(-h // m) * m, -(-w // m) * m


def build_case(name: str) -> tuple[nn.Module, int]:
    factory, channels = OP_CASES[name]
    torch.manual_seed(sum(map(ord, name)))
    return randomize_batchnorm(factory()), channels


class GateFirst(nn.Module):
    """Channel attention written gate-first: the pooled factor is the left operand."""

    def __init__(self, c=4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return torch.sigmoid(self.fc(self.pool(x))) * x


OP_CASES["channel_gate_first"] = (lambda: GateFirst(), 4)

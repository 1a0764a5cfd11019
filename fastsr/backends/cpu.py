"""CPU backend: a planned graph becomes one `fastsr._C.Program`, run by one C++ call.

At compile time every tensor gets a place (a buffer and a channel offset), every conv its
packed weights, and every node one step; `run` is then one GIL-free C++ call per frame
that allocates nothing but the returned tensor. Choices made here and in csrc/:

- 3x3 stride-1 convs with >= 32 channels in and out run as Winograd F(4x4, 3x3) (the C++
  side picks it; about 1.6x the direct kernel, error ~1e-6 relative); the rest run the
  direct register-blocked kernel. Both fuse the whole epilogue.
- Tensors a concat consumes are written straight into their channel slice of the
  concat's buffer, so most concats cost nothing.
- A buffer carries a zero border as wide as the widest padding of any convolution that
  reads it, so the conv kernel never checks bounds; buffers are reused only between
  tensors of identical geometry, so the border stays zero.
- conv_transpose2d with stride s is run as a conv producing s*s phases per output
  channel, stored through the pixel-shuffle epilogue (sub-pixel convolution).
- A bicubic-resized skip is resized once into a scratch buffer that the last conv's
  epilogue adds.
- precision="int8" / "bf16" runs some convs narrow (cpu_int8.py, cpu_bf16.py; which
  tensors are narrow: cpu_narrow.py); every other step stays fp32.
- A frame goes in and out through `Program.run_image`: the caller's pixels are converted
  (dtype, BT.601 luma for Y models) straight into the input buffer and the output back
  (chroma, clamp, round, dtype) in the same GIL-free call; no numpy or torch op per frame.
  A video frame goes as YUV planes through `Program.run_yuv` (fastsr/yuv.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastsr.backends.cpu_bf16 import Bf16Steps, Bf16Tensors
from fastsr.backends.cpu_int8 import Int8Steps, Int8Tensors
from fastsr.color import RGB_TO_YCBCR, YCBCR_OFFSET
from fastsr.graph.ir import CONV_OPS as CONVS
from fastsr.graph.ir import ELEMENTWISE_OPS, KERNEL_OPS, Graph, Node, image_color


def _c_module():
    from fastsr import _C

    return _C


@dataclass
class ConvSpec:
    """A convolution as the C++ kernel runs it (transposed convs already rewritten)."""

    weight: np.ndarray  # OIHW
    bias: np.ndarray
    slope: np.ndarray | None
    stride: int
    dilation: int
    pad_top: int
    pad_left: int
    shuffle: int
    algorithm: str = "auto"  # or "direct": see conv_spec

    def border_needed(self, h: int, w: int, out_h: int, out_w: int) -> int:
        """Zero border the input needs so that every tap reads inside the buffer."""
        k_h, k_w = self.weight.shape[2:]
        bottom = (out_h - 1) * self.stride - self.pad_top + self.dilation * (k_h - 1)
        right = (out_w - 1) * self.stride - self.pad_left + self.dilation * (k_w - 1)
        return max(self.pad_top, self.pad_left, bottom - (h - 1), right - (w - 1), 0)

    def bf16_family(self) -> str:
        """The bf16 kernel family the C++ side runs this conv on at the active level."""
        cout, cin = self.weight.shape[:2]
        return _c_module().bf16_isa_for(cin, cout)

    def runs_winograd(self) -> bool:
        """Whether the C++ side runs this conv (in fp32) as Winograd at the active SIMD level;
        with a pixel shuffle, into a pre-shuffle buffer of the input's size."""
        cout, cin, k_h, k_w = self.weight.shape
        return self.algorithm != "direct" and _c_module().winograd_fits(
            cin, cout, k_h, k_w, self.stride, self.dilation, self.pad_top, self.pad_left,
        )  # fmt: skip


def _per_channel(graph: Graph, node: Node, channels: int) -> tuple[np.ndarray, np.ndarray | None]:
    bias = graph.param(node.attrs.get("bias"))
    bias = np.zeros(channels, np.float32) if bias is None else bias.astype(np.float32)
    slope = None
    if node.epilogue("activation") == "prelu":
        slope = graph.params[node.epilogue("activation_param")].astype(np.float32).reshape(-1)
        slope = np.broadcast_to(slope, (channels,)).copy()
    return bias, slope


def _transposed_axis(k: int, s: int, p: int) -> tuple[int, int]:
    """(first, last) input offset m read by a stride-s transposed conv: out[s*q + phase]
    sums in[q - m] * w[m*s + phase + p] over m with 0 <= m*s + phase + p < k."""
    lo = min(-((phase + p) // s) for phase in range(s))
    hi = max((k - 1 - phase - p) // s for phase in range(s))
    return lo, hi


def conv_spec(graph: Graph, node: Node) -> ConvSpec:
    """A pixel-shuffled conv that writes the graph's output stays direct: Winograd's
    rounding reaches the image unattenuated there (SPAN x4's tail: 1.8e-4 from eager,
    against 4e-5 direct; the parity bar is 1e-4)."""
    spec = _kernel_conv(graph, node)
    if node.output == graph.output and spec.shuffle > 1:
        spec.algorithm = "direct"
    return spec


def _kernel_conv(graph: Graph, node: Node) -> ConvSpec:
    a = node.attrs
    weight = graph.params[a["weight"]].astype(np.float32)
    if node.op == "conv2d":
        bias, slope = _per_channel(graph, node, weight.shape[0])
        return ConvSpec(
            np.ascontiguousarray(weight),
            bias,
            slope,
            a["stride"][0],
            a["dilation"][0],
            a["padding"][0],
            a["padding"][1],
            node.epilogue("pixel_shuffle"),
        )
    cin, cout, k_h, k_w = weight.shape
    s = a["stride"][0]
    (lo_h, hi_h), (lo_w, hi_w) = (
        _transposed_axis(k, s, p) for k, p in zip((k_h, k_w), a["padding"], strict=True)
    )
    taps_h, taps_w = hi_h - lo_h + 1, hi_w - lo_w + 1
    # Output channel co*s*s + phase_y*s + phase_x computes out[s*qy + phase_y, s*qx + phase_x].
    phases = np.zeros((cout, s, s, cin, taps_h, taps_w), np.float32)
    for py in range(s):
        for ty in range(taps_h):
            ky = (hi_h - ty) * s + py + a["padding"][0]
            if not 0 <= ky < k_h:
                continue
            for px in range(s):
                for tx in range(taps_w):
                    kx = (hi_w - tx) * s + px + a["padding"][1]
                    if 0 <= kx < k_w:
                        phases[:, py, px, :, ty, tx] = weight[:, :, ky, kx].T
    bias, slope = _per_channel(graph, node, cout)
    repeat = s * s
    return ConvSpec(
        phases.reshape(cout * repeat, cin, taps_h, taps_w),
        np.repeat(bias, repeat),
        None if slope is None else np.repeat(slope, repeat),
        1,
        1,
        hi_h,
        hi_w,
        s,
    )


def _runs_winograd(graph: Graph) -> bool:
    return any(
        conv_spec(graph, node).runs_winograd() for node in graph.nodes if node.op in CONVS
    )


def _int8_beats_winograd(isa: str, int8_winograd: bool) -> bool:
    """Whether int8's convs outrun fp32's Winograd ones: the quality models at 640x360,
    2 threads (docs/BENCHMARKS.md, int8 Winograd). On a Sapphire Rapids Xeon, CPU time:
    AMX tiles 2.0-2.3x fp32, AVX-512 VNNI 1.57-1.82x (direct 1.34-1.56x), AVX-VNNI
    1.81-1.90x (direct 1.31-1.34x) and AVX2's vpmaddubsw 1.21x as int8 Winograd (0.76x
    direct: so only where the calibration has the Winograd taps, `int8_winograd`); the
    lower levels forced. Zen 4's VNNI: 2.0x as int8 Winograd, 1.4x direct (session 17,
    CPU time)."""
    if isa in ("amx", "avxvnni", "avx512vnni"):
        return True
    return isa == "avx2" and int8_winograd


def _problems(node: Node) -> list[str]:
    where = node.name or node.output
    if node.op not in KERNEL_OPS:
        return [f"{where}: op '{node.op}' has no CPU kernel"]
    if node.op in CONVS and node.attrs["groups"] != 1:
        return [f"{where}: grouped convolution (groups={node.attrs['groups']})"]
    if node.op in CONVS and node.attrs["stride"][0] != node.attrs["stride"][1]:
        return [f"{where}: unequal strides {node.attrs['stride']}"]
    if node.op == "conv2d" and node.attrs["dilation"][0] != node.attrs["dilation"][1]:
        return [f"{where}: unequal dilations {node.attrs['dilation']}"]
    if node.op == "conv_transpose2d" and tuple(node.attrs["dilation"]) != (1, 1):
        return [f"{where}: dilated transposed convolution"]
    if node.op == "conv_transpose2d" and node.epilogue("pixel_shuffle") != 1:
        return [f"{where}: pixel shuffle after a transposed convolution"]
    return []


class Layout:
    """Where every tensor of a planned graph lives: buffers of one geometry each
    (batch, height, width, channels, zero border), concat inputs as channel slices."""

    def __init__(self, graph: Graph, plan):
        self.graph, self.plan = graph, plan
        self.convs = {n.output: conv_spec(graph, n) for n in graph.nodes if n.op in CONVS}
        self.parent = self._concat_slices()
        self.buffers: list[tuple[int, int, int, int, int]] = []
        self.buffer_of: dict[str, int] = {}
        self._allocate()

    def _concat_slices(self) -> dict[str, tuple[str, int]]:
        """tensor -> (concat output, channel offset) for tensors produced in place."""
        parent: dict[str, tuple[str, int]] = {}
        for node in self.graph.nodes:
            if node.op != "concat":
                continue
            offset = 0
            for name in node.inputs:
                if name not in parent and name != self.graph.output and name != node.output:
                    parent[name] = (node.output, offset)
                offset += self.plan.shapes[name][0]
        return parent

    def root(self, tensor: str) -> tuple[str, int]:
        offset = 0
        while tensor in self.parent:
            tensor, extra = self.parent[tensor]
            offset += extra
        return tensor, offset

    def _border(self) -> dict[str, int]:
        border: dict[str, int] = {}
        for node in self.graph.nodes:
            if node.op in CONVS:
                spec = self.convs[node.output]
                _, h, w = self.plan.shapes[node.inputs[0]]
                _, oh, ow = self.plan.shapes[node.output]
                need = spec.border_needed(h, w, oh // spec.shuffle, ow // spec.shuffle)
                root = self.root(node.inputs[0])[0]
                border[root] = max(border.get(root, 0), need)
        return border

    def _allocate(self) -> None:
        """Liveness-based reuse of buffers of identical geometry."""
        nodes, graph = self.graph.nodes, self.graph
        last: dict[str, int] = {self.root(graph.output)[0]: len(nodes)}
        for i, node in enumerate(nodes):
            for name in node.inputs:
                root = self.root(name)[0]
                last[root] = max(last.get(root, -1), i)
        border = self._border()

        def geometry(root):
            c, h, w = self.plan.shapes[root]
            return self.plan.batch, h, w, c, border.get(root, 0)

        free: dict[tuple, list[int]] = {}

        def release(root):
            free.setdefault(geometry(root), []).append(self.buffer_of[root])

        def acquire(root):
            pool = free.get(geometry(root))
            if pool:
                self.buffer_of[root] = pool.pop()
            else:
                self.buffer_of[root] = len(self.buffers)
                self.buffers.append(geometry(root))

        acquire(self.root(graph.input)[0])
        for i, node in enumerate(nodes):
            dying = {self.root(n)[0] for n in node.inputs if last[self.root(n)[0]] == i}
            # Elementwise ops (and a conv's skip) may write over an input dying here.
            in_place = {
                n
                for k, n in enumerate(node.inputs)
                if n in dying
                and n not in self.parent
                and (
                    node.op in ELEMENTWISE_OPS
                    or (node.op in CONVS and k > 0 and n != node.inputs[0])
                )
            }
            for root in in_place:
                release(root)
            out_root = self.root(node.output)[0]
            if out_root not in self.buffer_of:
                acquire(out_root)
            for root in dying - in_place:
                if root != out_root:
                    release(root)

    def nbytes(self, threads: int) -> int:
        """What `Program.bytes` will report for this layout run on `threads` threads."""
        floats = sum(n * (h + 2 * pad) * (w + 2 * pad) * c for n, h, w, c, pad in self.buffers)
        c_module = _c_module()
        for node in self.graph.nodes:
            _, h, w = self.plan.shapes[node.inputs[0]]
            c, out_h, out_w = self.plan.shapes[node.output]
            if node.op == "resize":
                floats += self.plan.batch * h * out_w * c
            elif node.op in CONVS:
                if len(node.inputs) > 1 and node.epilogue("skip_resize") is not None:
                    _, skip_h, _ = self.plan.shapes[node.inputs[1]]
                    floats += self.plan.batch * c * out_w * (out_h + skip_h)
                spec = self.convs[node.output]
                if spec.runs_winograd():
                    cout, cin = spec.weight.shape[:2]
                    floats += threads * c_module.winograd_scratch_floats(cin, cout)
                    if spec.shuffle > 1:
                        floats += self.plan.batch * h * w * cout
        if image_color(self.graph) == "y":
            _, h, w = self.plan.shapes[self.graph.input]
            floats += self.plan.batch * 2 * h * w  # the low-resolution Cb/Cr
        return 4 * floats


# precision -> (the steps a ProgramBuilder adds for its layers, the tensors they keep narrow)
NARROW_LAYERS = {"int8": (Int8Steps, Int8Tensors), "bf16": (Bf16Steps, Bf16Tensors)}


class ProgramBuilder:
    """Turns a Layout's buffers into Program buffers and its nodes into Program steps."""

    def __init__(self, graph: Graph, plan, threads: int, precision: str = "fp32"):
        self._C = _c_module()
        self.graph, self.plan = graph, plan
        self.layout = Layout(graph, plan)
        self.convs, self.root = self.layout.convs, self.layout.root
        self.program = self._C.Program(threads)
        self.buffer_of = self.layout.buffer_of
        for geometry in self.layout.buffers:
            self.program.add_buffer(*geometry)
        steps = NARROW_LAYERS[precision][0] if precision in NARROW_LAYERS else None
        self.narrow = steps(self) if steps else None
        if self.narrow:
            self.narrow.convert_if_read(graph.input)
        for node in graph.nodes:
            self._add_step(node)
            if self.narrow:
                self.narrow.convert_if_read(node.output)
        self.program.set_input(self.view(graph.input))
        self.program.set_output(self.view(graph.output))
        color = image_color(graph)
        if color is not None:
            self.program.set_color(
                color, RGB_TO_YCBCR.astype(np.float32), YCBCR_OFFSET.astype(np.float32)
            )

    def view(self, tensor: str):
        root, offset = self.root(tensor)
        return self.program.view(self.buffer_of[root], offset, self.plan.shapes[tensor][0])

    # -- steps ----------------------------------------------------------------------------

    def _add_step(self, node: Node) -> None:
        p, a = self.program, node.attrs
        ins = [self.view(n) for n in node.inputs]
        out = self.view(node.output)
        if node.op in CONVS:
            self._add_conv(node, ins, out)
        elif node.op == "add":
            p.add(ins[0], ins[1], out)
        elif node.op == "mul":
            p.mul(ins[0], ins[1], out)
        elif node.op == "mul_add":
            p.mul(ins[0], ins[1], out, skip=ins[2])
        elif node.op == "affine":
            p.affine(
                ins[0],
                self.graph.params[a["scale"]].reshape(-1),
                self.graph.params[a["shift"]].reshape(-1),
                out,
            )
        elif node.op == "concat":
            offset = 0
            for name, view in zip(node.inputs, ins, strict=True):
                channels = self.plan.shapes[name][0]
                if self.root(name) != (
                    self.root(node.output)[0],
                    self.root(node.output)[1] + offset,
                ):
                    root, base = self.root(node.output)
                    p.copy(view, p.view(self.buffer_of[root], base + offset, channels))
                offset += channels
        elif node.op == "global_avg_pool":
            p.global_avg_pool(ins[0], out)
        elif node.op == "pixel_shuffle":
            p.pixel_shuffle(ins[0], a["factor"], out)
        elif node.op == "pixel_unshuffle":
            p.pixel_unshuffle(ins[0], a["factor"], out)
        elif node.op == "resize":
            p.resize(ins[0], out, a["mode"], a["factor"])
        elif node.op == "prelu":
            p.activation(ins[0], out, "prelu", slope=self.graph.params[a["slope"]].reshape(-1))
        elif node.op == "leaky_relu":
            p.activation(ins[0], out, "leaky_relu", alpha=a["alpha"])
        elif node.op == "clamp":
            lo = -np.inf if a["min"] is None else a["min"]
            hi = np.inf if a["max"] is None else a["max"]
            p.activation(ins[0], out, "clamp", lo=lo, hi=hi)
        else:
            p.activation(ins[0], out, node.op)

    def _add_conv(self, node: Node, ins, out) -> None:
        spec = self.convs[node.output]
        skip = ins[1] if len(ins) > 1 else None
        mode = node.epilogue("skip_resize")
        if skip is not None and mode is not None:
            resized = self.program.add_buffer(out.n, out.h, out.w, out.c, 0)
            scratch = self.program.view(resized, 0, out.c)
            self.program.resize(skip, scratch, mode, out.h // skip.h)
            skip = scratch
        activation = node.epilogue("activation") or "none"
        alpha = node.epilogue("activation_param") if activation == "leaky_relu" else 0.0
        # Everything but the operands, as every conv step (fp32, int8, bf16) takes it.
        conv_args = dict(
            stride=spec.stride, pad_top=spec.pad_top, pad_left=spec.pad_left,
            dilation=spec.dilation, activation=activation, slope=spec.slope, alpha=alpha,
            shuffle=spec.shuffle, skip=skip,
        )  # fmt: skip
        if self.narrow and self.narrow.runs(node):
            self.narrow.add_conv(node, out, conv_args)
            return
        gate = dict(gate=node.epilogue("gate") or "none", gate_scale=node.epilogue("gate_scale"),
                    gate_shift=node.epilogue("gate_shift"))
        self.program.conv2d(ins[0], out, spec.weight, spec.bias, algorithm=spec.algorithm,
                            **conv_args, **gate)


class CompiledProgram:
    """A plan compiled into one `_C.Program`; each run is one GIL-free C++ call."""

    def __init__(self, program):
        self.program = program

    @property
    def nbytes(self) -> int:
        """The program's bytes now: run_yuv adds its chroma once a frame has made it."""
        return self.program.bytes

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.program.run(x)

    def run_image(self, src: np.ndarray, dst: np.ndarray, top: int = 0, left: int = 0,
                  valid: tuple[int, int] | None = None) -> None:
        self.program.run_image(src, dst, top, left, *(valid or (None, None)))

    def run_yuv(self, src, dst, **coding) -> None:
        self.program.run_yuv(src, dst, **coding)


class CpuBackend:
    name = "cpu"
    device = "cpu"
    array = "numpy"

    def availability(self) -> str | None:
        try:
            _c_module()
        except ImportError as error:
            return f"the C++ extension fastsr._C is not built ({error})"
        return None

    def precisions(self) -> tuple[str, ...]:
        return ("fp32", "int8", "bf16") if _c_module().bf16_supported() else ("fp32", "int8")

    def faster_precisions(self, graph: Graph) -> tuple[str, ...]:
        """Fastest first. int8 only with dot-product kernels: the portable and ARMv8.0 NEON
        ones have none and are no faster than fp32 (docs/ARM.md); on a model fp32 runs as
        Winograd, only where `_int8_beats_winograd`. bf16 not on AVX512_BF16 where the CPU
        has AMX: it ran fastsr's models at 0.63-1.0x fp32 there (Sapphire Rapids; Zen 4's at
        1.5x). AMX bf16 tiles ran them at 1.8-3.4x, ahead of AMX int8 on the fast models
        (whose narrow convs int8 leaves to VNNI) and behind it on quality_x2's 64-channel
        Winograd body (README, precision)."""
        c = _c_module()
        isa, bf16, winograd = c.int8_isa(), c.bf16_isa(), _runs_winograd(graph)
        int8_winograd = "winograd" in graph.meta.get("int8", {})
        slow = {"fp32"}
        if isa in ("portable", "neon") or (
            winograd and not _int8_beats_winograd(isa, int8_winograd)
        ):
            slow.add("int8")
        if bf16 == "avx512bf16" and "amx" in c.supported_bf16_isas():
            slow.add("bf16")
        order = ("bf16", "int8") if bf16 == "amx" and not winograd else ("int8", "bf16")
        return tuple(p for p in order if p in self.precisions() and p not in slow)

    def unsupported(self, graph: Graph) -> list[str]:
        return [problem for node in graph.nodes for problem in _problems(node)]

    def default_threads(self) -> int:
        return _c_module().max_threads()

    def plan_bytes(self, graph: Graph, plan, precision: str = "fp32", threads=None) -> int:
        layout = Layout(graph, plan)
        tensors = NARROW_LAYERS[precision][1] if precision in NARROW_LAYERS else None
        extra = tensors(graph, plan, layout.convs).nbytes() if tensors else 0
        return layout.nbytes(threads or self.default_threads()) + extra

    def compile(self, graph: Graph, plan, precision: str = "fp32", threads: int | None = None):
        builder = ProgramBuilder(graph, plan, threads=threads or 0, precision=precision)
        return CompiledProgram(builder.program)


BACKEND = CpuBackend()

"""Sizes read at run time and the views they shape, for the ONNX importer.

An exporter that keeps the frame size dynamic writes a crop back to the input's size, or
a hand-written pixel (un)shuffle, over the tensor's runtime shape: Shape, Gather, Concat
and integer arithmetic feed Slice and Reshape. The importer follows those sizes as
monomials in the batch n and the input height h and width w, so it can prove what a
Reshape / Transpose / Reshape chain does with the pixels before it maps it onto an IR op.
Integer division is followed as exact: the plan binds only sizes at which every tensor
of the graph has a whole size (`TensorShape.bind`), which are the sizes it proves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from fastsr.graph.ir import GLOBAL, GraphError, TensorShape

_VARIABLES = ("n", "h", "w")


@dataclass(frozen=True)
class Dim:
    """coefficient * n^a * h^b * w^c, with powers (a, b, c)."""

    coefficient: Fraction
    powers: tuple[int, int, int] = (0, 0, 0)

    @staticmethod
    def of(value: int | Dim) -> Dim:
        return value if isinstance(value, Dim) else Dim(Fraction(int(value)))

    @property
    def constant(self) -> int | None:
        whole = self.powers == (0, 0, 0) and self.coefficient.denominator == 1
        return int(self.coefficient) if whole else None

    def __mul__(self, other: Dim) -> Dim:
        powers = tuple(a + b for a, b in zip(self.powers, other.powers, strict=True))
        return Dim(self.coefficient * other.coefficient, powers)

    def __truediv__(self, other: Dim) -> Dim:
        if other.coefficient == 0:
            raise GraphError("a size is divided by zero")
        powers = tuple(a - b for a, b in zip(self.powers, other.powers, strict=True))
        return Dim(self.coefficient / other.coefficient, powers)

    def __add__(self, other: Dim) -> Dim:
        if self.coefficient == 0:
            return other
        if other.coefficient != 0 and other.powers != self.powers:
            raise GraphError(f"{self} + {other} is not a multiple of one size")
        return Dim(self.coefficient + other.coefficient, self.powers)

    def __neg__(self) -> Dim:
        return Dim(-self.coefficient, self.powers)

    def __str__(self) -> str:
        pairs = zip(_VARIABLES, self.powers, strict=True)
        factors = [v if p == 1 else f"{v}^{p}" for v, p in pairs if p]
        if not factors:
            return str(self.coefficient)
        head = [] if self.coefficient == 1 else [str(self.coefficient)]
        return "*".join(head + factors)


def tensor_dims(shape: TensorShape, batch: Dim | None = None) -> tuple[Dim, ...]:
    """N x C x H x W of an IR tensor, its size relative to the input's h and w; N is the
    batch n unless the file fixes it."""
    n = batch or Dim(Fraction(1), (1, 0, 0))
    if shape.scale == GLOBAL:
        return n, Dim.of(shape.channels), Dim.of(1), Dim.of(1)
    scale = Fraction(shape.scale)
    return n, Dim.of(shape.channels), Dim(scale, (0, 1, 0)), Dim(scale, (0, 0, 1))


def product(dims) -> Dim:
    total = Dim.of(1)
    for dim in dims:
        total = total * dim
    return total


def describe(dims) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def reshaped(dims: tuple[Dim, ...], target: tuple[Dim, ...], allow_zero: bool, where: str):
    """ONNX Reshape's output dims: 0 copies the input's dim (unless allowzero), one -1
    takes what is left."""
    out, unknown = [], []
    for i, dim in enumerate(target):
        if dim.constant == 0 and not allow_zero:
            if i >= len(dims):
                raise GraphError(f"{where}: Reshape copies dim {i} of a {len(dims)}-D tensor")
            dim = dims[i]
        elif dim.constant == -1:
            unknown.append(i)
        elif dim.constant is not None and dim.constant <= 0:
            raise GraphError(f"{where}: Reshape to a dim of {dim.constant}")
        out.append(dim)
    if len(unknown) > 1:
        raise GraphError(f"{where}: Reshape with more than one -1 dim")
    if unknown:
        rest = product(d for i, d in enumerate(out) if i != unknown[0])
        out[unknown[0]] = product(dims) / rest
    if product(out) != product(dims):
        raise GraphError(f"{where}: Reshape of {describe(dims)} into {describe(out)} "
                         "changes the number of elements")
    return tuple(out)


@dataclass(frozen=True)
class View:
    """IR tensor `source` reshaped to `split`, its axes permuted by `perm` (identity before
    any Transpose), then reshaped to `dims`: what a chain of Reshape, Unsqueeze, Squeeze and
    one Transpose has done to it. Reshapes keep the row-major order of the elements, so the
    chain is known by `split`, `perm` and `dims` alone."""

    source: str
    source_dims: tuple[Dim, ...]
    split: tuple[Dim, ...]
    perm: tuple[int, ...]
    dims: tuple[Dim, ...]

    @staticmethod
    def of(source: str, dims: tuple[Dim, ...]) -> View:
        return View(source, dims, dims, tuple(range(len(dims))), dims)

    @property
    def permuted(self) -> bool:
        return self.perm != tuple(range(len(self.perm)))

    def reshape(self, dims: tuple[Dim, ...]) -> View:
        if not self.permuted:
            return View(self.source, self.source_dims, dims, tuple(range(len(dims))), dims)
        return View(self.source, self.source_dims, self.split, self.perm, dims)

    def transpose(self, perm: tuple[int, ...], where: str) -> View:
        if sorted(perm) != list(range(len(self.dims))):
            raise GraphError(f"{where}: perm {list(perm)} does not permute "
                             f"{len(self.dims)} axes")
        if not self.permuted:
            return View(self.source, self.source_dims, self.dims, perm,
                        tuple(self.dims[p] for p in perm))
        if self.dims != tuple(self.split[p] for p in self.perm):
            raise GraphError(f"{where}: a second Transpose after a Reshape of a permuted "
                             f"view of '{self.source}' is not supported")
        composed = tuple(self.perm[p] for p in perm)
        return View(self.source, self.source_dims, self.split, composed,
                    tuple(self.split[p] for p in composed))


def _canonical(split: tuple[Dim, ...], perm: tuple[int, ...]):
    """The permutation with size-1 axes dropped and runs of axes that stay neighbours
    merged: two views move elements alike exactly when these agree."""
    kept = [i for i, dim in enumerate(split) if dim.constant != 1]
    renumber = {old: new for new, old in enumerate(kept)}
    order = [renumber[p] for p in perm if p in renumber]
    runs: list[list[int]] = []
    for axis in order:
        if runs and runs[-1][-1] + 1 == axis:
            runs[-1].append(axis)
        else:
            runs.append([axis])
    by_input = sorted(runs)
    dims = tuple(product(split[kept[a]] for a in run) for run in by_input)
    return dims, tuple(by_input.index(run) for run in runs)


def _pixel_unshuffle_view(n: Dim, c: Dim, h: Dim, w: Dim, r: Dim):
    """PyTorch's pixel_unshuffle as a view: split, permutation, result."""
    split = (n, c, h / r, r, w / r, r)
    return split, (0, 1, 3, 5, 2, 4), (n, c * r * r, h / r, w / r)


def _pixel_shuffle_view(n: Dim, c: Dim, h: Dim, w: Dim, r: Dim):
    out_c = c / (r * r)
    split = (n, out_c, r, r, h, w)
    return split, (0, 1, 4, 2, 5, 3), (n, out_c, h * r, w * r)


def rearrangement(view: View, where: str) -> tuple[str, int] | None:
    """("pixel_unshuffle" | "pixel_shuffle", factor) for a 4-D view that is one, None for a
    view that leaves the tensor as it was; GraphError for any other rearrangement."""
    if view.dims == view.source_dims and _canonical(view.split, view.perm)[1] in ((), (0,)):
        return None
    n, c, h, w = view.source_dims
    if len(view.dims) == 4 and c.constant and view.dims[1].constant:
        out_c = view.dims[1].constant
        ratio = Fraction(max(out_c, c.constant), min(out_c, c.constant))
        r = math.isqrt(int(ratio)) if ratio.denominator == 1 else 0
        if r >= 2 and r * r == ratio:
            op, build = (("pixel_unshuffle", _pixel_unshuffle_view) if out_c > c.constant
                         else ("pixel_shuffle", _pixel_shuffle_view))
            split, perm, dims = build(n, c, h, w, Dim.of(r))
            if dims == view.dims and _canonical(split, perm) == _canonical(view.split,
                                                                        view.perm):
                return op, r
    raise GraphError(
        f"{where}: the Reshape/Transpose chain from '{view.source}' {describe(view.source_dims)}"
        f" through {describe(view.split)} permuted by {list(view.perm)} into "
        f"{describe(view.dims)} is not a pixel shuffle or pixel unshuffle; only those "
        "rearrangements are supported"
    )

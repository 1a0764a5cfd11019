"""What the kernels are launched on: a CUDA GPU, or Triton's interpreter for CPU tensors.

Tile sizes differ between the two: the interpreter runs each program instance as numpy
calls, so there fewer, larger programs are faster; a GPU wants many programs in flight.
"""

from __future__ import annotations

import torch
import triton.language as tl

TL_DTYPES = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}


def launch_target(tensor: torch.Tensor) -> str:
    """'interpreter' for CPU tensors (TRITON_INTERPRET=1), else 'gpu'."""
    return "interpreter" if tensor.device.type == "cpu" else "gpu"


def dot_dtype(weight: torch.Tensor) -> tl.dtype:
    """Operand type of tl.dot for a packed weight.

    The weight's own type, except bfloat16 in the interpreter: Triton 3.9's interpreter
    multiplies bfloat16 operands as their raw uint16 bits. Widening to float32 there is
    exact (bfloat16 products fit a float32 mantissa), so tests still see bf16 rounding.
    """
    if weight.dtype == torch.bfloat16 and launch_target(weight) == "interpreter":
        return tl.float32
    return TL_DTYPES[weight.dtype]

import os
import sys
from pathlib import Path

import torch

# Triton kernels run in the interpreter on machines without CUDA; this must be set
# before any kernel module is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

sys.path.insert(0, str(Path(__file__).parent))

from simd_levels import bf16_isa, int8_isa, simd  # noqa: E402, F401  (the fixtures, for every test module)

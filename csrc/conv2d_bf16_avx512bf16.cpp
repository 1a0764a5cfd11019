// bf16 direct convolution and the fp32 <-> bf16 steps, AVX512_BF16 build. The tile is the
// fp32 AVX-512 kernel's (P pixels x NV vectors of 16 fp32 accumulators); each vdpbf16ps
// adds the products of two input channels, so a tile does twice the fp32 kernel's work
// per instruction.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include <omp.h>

#include "conv2d_bf16.h"

namespace fastsr {
namespace {

#include "ops_avx512.inc"
#include "microkernel.inc"
#include "conv2d_store.inc"
#include "bf16_ops_512.inc"
#include "conv2d_bf16_kernel.inc"

}  // namespace

extern const Bf16Kernels kAvx512Bf16Kernels = {run_conv_bf16, rows_to_bf16, rows_from_bf16};

}  // namespace fastsr

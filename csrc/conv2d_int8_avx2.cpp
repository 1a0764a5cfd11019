// Int8 direct convolution, avx2 build.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include <omp.h>

#include "conv2d_int8.h"
#include "winograd_int8.h"

namespace fastsr {
namespace {

#include "ops_avx2.inc"
#include "microkernel.inc"
#include "int8_ops_256.inc"
#include "conv2d_int8_kernel.inc"
#include "winograd_int8_kernel.inc"

}  // namespace

void conv2d_int8_avx2(const Int8ConvJob& job) { run_conv_int8(job); }
void quantize_u8_avx2(const QuantizeJob& job) { run_quantize_u8(job); }
void winograd_int8_avx2(const Int8WinogradJob& job) { run_winograd_int8(job); }

}  // namespace fastsr

// Int8 direct convolution, avxvnni build (untested on the AVX2-only development machine).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include <omp.h>

#include "conv2d_int8.h"
#include "winograd_int8.h"

#define FASTSR_INT8_VNNI 1
namespace fastsr {
namespace {

#include "ops_avx2.inc"
#include "microkernel.inc"
#include "int8_ops_256.inc"
#include "conv2d_int8_kernel.inc"
#include "winograd_int8_kernel.inc"

}  // namespace

void conv2d_int8_avxvnni(const Int8ConvJob& job) { run_conv_int8(job); }
void quantize_u8_avxvnni(const QuantizeJob& job) { run_quantize_u8(job); }
void winograd_int8_avxvnni(const Int8WinogradJob& job) { run_winograd_int8(job); }

}  // namespace fastsr

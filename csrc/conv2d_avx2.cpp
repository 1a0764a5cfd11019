#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include <omp.h>

#include "conv_config.h"

namespace fastsr {
namespace {

#include "ops_avx2.inc"
#include "microkernel.inc"
#include "conv2d_kernel.inc"
#include "winograd_kernel.inc"

}  // namespace

void conv2d_avx2(const ConvJob& job, int64_t begin, int64_t end) {
  run_conv(job, begin, end);
}
void winograd_avx2(const WinogradJob& job) { run_winograd(job); }

}  // namespace fastsr

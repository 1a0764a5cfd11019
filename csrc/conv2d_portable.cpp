// Direct convolution, portable build (off x86, or FASTSR_SIMD=portable).
#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include <omp.h>

#include "conv_config.h"

namespace fastsr {
namespace {

#include "ops_portable.inc"
#include "microkernel.inc"
#include "conv2d_kernel.inc"
#include "winograd_kernel.inc"

}  // namespace

void conv2d_portable(const ConvJob& job, int64_t begin, int64_t end) {
  run_conv(job, begin, end);
}
void winograd_portable(const WinogradJob& job) { run_winograd(job); }

}  // namespace fastsr

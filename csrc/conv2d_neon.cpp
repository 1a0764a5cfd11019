#include <arm_neon.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include <omp.h>

#include "conv_config.h"

namespace fastsr {
namespace {

#include "ops_neon.inc"
#include "microkernel.inc"
#include "conv2d_kernel.inc"
#include "winograd_kernel.inc"

}  // namespace

void conv2d_neon(const ConvJob& job, int64_t begin, int64_t end) {
  run_conv(job, begin, end);
}
void winograd_neon(const WinogradJob& job) { run_winograd(job); }

}  // namespace fastsr

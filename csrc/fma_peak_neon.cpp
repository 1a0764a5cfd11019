#include <arm_neon.h>

#include "fma_peak.h"

namespace fastsr {

// 24 independent chains: enough to cover 4 FMA pipes x 4-cycle latency on the widest cores.
double fma_chains_neon(int64_t iterations) {
  float32x4_t acc[24];
  for (int k = 0; k < 24; ++k) acc[k] = vdupq_n_f32(float(k));
  const float32x4_t a = vdupq_n_f32(0.999999f), b = vdupq_n_f32(1e-7f);
  for (int64_t i = 0; i < iterations; ++i)
#pragma GCC unroll 24
    for (int k = 0; k < 24; ++k) acc[k] = vfmaq_f32(b, acc[k], a);
  float32x4_t sum = acc[0];
  for (int k = 1; k < 24; ++k) sum = vaddq_f32(sum, acc[k]);
  volatile float sink = vgetq_lane_f32(sum, 0);
  (void)sink;
  return double(iterations) * 24 * 4 * 2;
}

}  // namespace fastsr

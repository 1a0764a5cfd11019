#include "conv_config.h"

#include <stdexcept>

#include "fma_peak.h"

namespace fastsr {

namespace {

#if FASTSR_HAS_X86_KERNELS
bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}
bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

// Advanced SIMD is part of the AArch64 baseline.
bool always() { return true; }

std::vector<ConvConfig> make_configs() {
  std::vector<ConvConfig> table;
#if FASTSR_HAS_X86_KERNELS
  table.push_back({Simd::Avx512, has_avx512, 8, Simd::Avx2, conv2d_avx512, winograd_avx512,
                   fma_chains_avx512});
  table.push_back({Simd::Avx2, has_avx2, 0, Simd::Avx2, conv2d_avx2, winograd_avx2,
                   fma_chains_avx2});
#endif
#if FASTSR_HAS_NEON_KERNELS
  table.push_back({Simd::Neon, always, 0, Simd::Neon, conv2d_neon, winograd_neon,
                   fma_chains_neon});
#endif
  table.push_back({Simd::Portable, always, 0, Simd::Portable, conv2d_portable,
                   winograd_portable, fma_chains_portable});
  return table;
}

}  // namespace

const std::vector<ConvConfig>& conv_configs() {
  static const std::vector<ConvConfig> table = make_configs();
  return table;
}

const ConvConfig& conv_config(Simd simd) {
  for (const ConvConfig& c : conv_configs())
    if (c.simd == simd) return c;
  throw std::invalid_argument("this build has no kernels for SIMD level '" + simd_name(simd) + "'");
}

}  // namespace fastsr

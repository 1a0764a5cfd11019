#include "cpu_features.h"

#include "simd.h"

#if FASTSR_HAS_NEON_KERNELS && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)  // Linux's arch/arm64 uapi hwcap.h, for older libc headers
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1 << 14)
#endif
#elif FASTSR_HAS_NEON_KERNELS && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace fastsr {

#if FASTSR_HAS_NEON_KERNELS && defined(__APPLE__)
static bool sysctl_flag(const char* name) {
  int value = 0;
  size_t size = sizeof value;
  return sysctlbyname(name, &value, &size, nullptr, 0) == 0 && value;
}
#endif

bool cpu_has(CpuFeature feature) {
#if FASTSR_HAS_X86_KERNELS
  __builtin_cpu_init();
  switch (feature) {
    case CpuFeature::AvxVnni: return __builtin_cpu_supports("avxvnni");
    case CpuFeature::Avx512Vnni: return __builtin_cpu_supports("avx512vnni");
    case CpuFeature::Avx512Bf16: return __builtin_cpu_supports("avx512bf16");
    default: return false;
  }
#elif FASTSR_HAS_NEON_KERNELS && defined(__linux__)
  switch (feature) {
    case CpuFeature::NeonDotprod: return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
    case CpuFeature::NeonBf16: return (getauxval(AT_HWCAP2) & HWCAP2_BF16) != 0;
    default: return false;
  }
#elif FASTSR_HAS_NEON_KERNELS && defined(__APPLE__)
  switch (feature) {
    case CpuFeature::NeonDotprod: return sysctl_flag("hw.optional.arm.FEAT_DotProd");
    case CpuFeature::NeonBf16: return sysctl_flag("hw.optional.arm.FEAT_BF16");
    default: return false;
  }
#else
  (void)feature;
  return false;
#endif
}

}  // namespace fastsr

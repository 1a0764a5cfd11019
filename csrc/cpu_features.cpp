#include "cpu_features.h"

#include "simd.h"

#if FASTSR_HAS_X86_KERNELS
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif
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

#if FASTSR_HAS_X86_KERNELS
// cpuid leaf 7's AMX bits (edx 24: tiles, 25: int8, 22: bf16), then Linux (5.16+), which
// enables the 8 KB tile state only for a process that asks, once:
// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), from its uapi asm/prctl.h.
static bool amx_granted(unsigned edx_bit) {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  if (!(edx & (1u << 24)) || !(edx & (1u << edx_bit))) return false;
#if defined(__linux__)
  static const bool granted = [] {
    constexpr int kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return granted;
#else
  return false;
#endif
}
#endif

bool cpu_has(CpuFeature feature) {
#if FASTSR_HAS_X86_KERNELS
  __builtin_cpu_init();
  switch (feature) {
    case CpuFeature::AvxVnni: return __builtin_cpu_supports("avxvnni");
    case CpuFeature::Avx512Vnni: return __builtin_cpu_supports("avx512vnni");
    case CpuFeature::Avx512Bf16: return __builtin_cpu_supports("avx512bf16");
    case CpuFeature::AmxInt8: return amx_granted(25);
    case CpuFeature::AmxBf16: return amx_granted(22);
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

// The CPU features the narrow (int8, bf16) kernel families need beyond their SIMD level,
// asked of cpuid (x86), HWCAP (Linux AArch64) or sysctl (macOS). The AMX ones also need
// the OS to grant the process the tile state (Linux only).
#pragma once

namespace fastsr {

enum class CpuFeature { AvxVnni, Avx512Vnni, Avx512Bf16, AmxInt8, AmxBf16, NeonDotprod, NeonBf16 };

bool cpu_has(CpuFeature feature);

}  // namespace fastsr

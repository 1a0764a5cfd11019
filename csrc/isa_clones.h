// Plain loops (image stage, resize) compiled for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 with
// FMA, which the blends and the colour matrices contract into) and the baseline ISA, and
// picked when the library loads (GCC/clang function multi-versioning): ~2.5x faster
// conversion and resize passes without a per-ISA source file; v4 takes another ~10 % off
// the image stage on Zen 4 (docs/BENCHMARKS.md, "The user path against the engine"). Helpers they call are
// inlined into each clone (FASTSR_INLINE), so they are compiled for its ISA too.
#pragma once

#if defined(__x86_64__) && defined(__linux__) && !defined(FASTSR_PORTABLE_ONLY) && \
    (defined(__GNUC__) || defined(__clang__))
#define FASTSR_ISA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTSR_ISA_CLONES
#endif
#define FASTSR_INLINE inline __attribute__((always_inline))

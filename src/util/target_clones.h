// Hand-written loops compiled once per ISA: GCC's target_clones builds a function for AVX-512, AVX2 and the
// baseline, and the loader picks the one the CPU runs (ifunc). The loops are plain scalar code that the
// compiler vectorizes per clone; what they call must be FME_INLINE, else it is compiled once, for the baseline
// (a helper left out of line ran 30x slower here).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define FME_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FME_TARGET_CLONES
#endif

#define FME_INLINE inline __attribute__((always_inline))

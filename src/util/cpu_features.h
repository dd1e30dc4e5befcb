// What this CPU can do, read once at run time (cpuid and the OS-enabled register state on x86-64, the
// hwcaps on AArch64), so every fast path is chosen on the machine it runs on and never assumed at build
// time. Torch-free: the RNG kernels, the compute-dtype choice and every benchmark's report read it.
//
// FME_CPU_DISABLE (comma-separated: avx512, avx512_bf16, amx, avx2, fma, aes, vaes, bf16) hides features
// from fme as if the CPU lacked them: to test and measure the paths of other CPUs on this one. Hiding a
// feature hides those that need it (avx2 hides avx512 and its kin; avx512 hides avx512_bf16).
#pragma once
#include <string>
#include <vector>

#include "util/json.h"

namespace fme {

struct CpuFeatures {
  std::string model;   // "AMD EPYC 7B13", "Intel(R) Xeon(R) Platinum 8481C", or "unknown"
  std::string arch;    // "x86_64", "aarch64", ...
  bool avx2 = false, fma = false, aes = false, vaes = false;
  bool avx512 = false;       // AVX-512 F + DQ + BW + VL, with the OS saving zmm state
  bool avx512_bf16 = false;  // AVX512_BF16 (vdpbf16ps): Cooper Lake, Sapphire Rapids, Zen 4
  bool amx_bf16 = false;     // AMX tiles with bf16 (Sapphire Rapids and later)
  bool arm_bf16 = false;     // AArch64 BF16 (BFMMLA/BFDOT: Neoverse V1/N2, Graviton 3)

  // True where bf16 matrix multiplication runs natively (as opposed to being emulated in fp32 pieces).
  bool native_bf16() const { return avx512_bf16 || amx_bf16 || arm_bf16; }
  // The present ones among "AVX-512", "AVX512_BF16", "AMX", "AVX2", "FMA", "AES-NI", "VAES", "BF16" (Arm).
  std::vector<std::string> isa_names() const;
  // "AVX-512 AVX512_BF16 AMX AVX2 FMA AES-NI VAES", or "none".
  std::string isa_summary() const;
};

// This machine's features (detected once, FME_CPU_DISABLE applied).
const CpuFeatures& cpu_features();

// What every benchmark prints so that figures from different machines can be read side by side:
// {"cpu": model, "arch": .., "isa": [names], "cores": hardware threads}, plus "cpu_disabled" when
// FME_CPU_DISABLE hides features.
Json cpu_report();

// Detection itself, with `disable` in FME_CPU_DISABLE's syntax; for tests. Unknown names throw ConfigError.
CpuFeatures detect_cpu_features(const std::string& disable);

// Applies a FME_CPU_DISABLE list to `f` (dependent features go too); unknown names throw ConfigError.
void disable_cpu_features(CpuFeatures& f, const std::string& disable);

}  // namespace fme

// Which dtype a run computes in. `auto` (the default of extract and forward) takes bf16 only where the
// hardware multiplies bf16 natively and fast, and fp32 everywhere else: on a CPU without AVX512_BF16, AMX or
// Arm BF16, libtorch's bf16 matmul is emulated and runs ~30x slower than fp32 (4.5 against 142 GFLOP/s on
// one AVX2 EPYC). Where the CPU has a native bf16 instruction, a short timed probe of the actual GEMM
// kernels (a few ms, once per process) checks that this libtorch really runs it natively before bf16 is
// chosen; on a GPU the probe alone decides. An explicit choice is always honoured; a slow one gets a one-line warning.
// Leaves out storage: the weights' dtype (--weights-dtype) and the output's (--out-dtype) are separate.
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <functional>
#include <string>

#include "util/cpu_features.h"

namespace fme {

// GEMM throughput of the two candidate dtypes, measured with the same shapes.
struct GemmProbe {
  double fp32_gflops = 0, bf16_gflops = 0;
};
using GemmProbeFn = std::function<GemmProbe()>;

// Times a 512 x 512 x 512 matmul in fp32 and bf16 on `device` (best of 3 after a warm-up), once per
// process and device type; later calls return the cached result.
GemmProbe probe_gemm(c10::Device device = c10::kCPU);

// Where the CPU has native bf16, `auto` keeps bf16 unless the probe finds its GEMM slower than this fraction
// of fp32's: a libtorch without the native kernels (emulated bf16 is ~30x slower). Native kernels run 2-8x
// faster than fp32, far from the margin, so noise in a loaded machine's probe does not flip the choice.
constexpr double kBf16RejectBelow = 0.8;

struct DtypeChoice {
  at::ScalarType dtype = at::kFloat;  // what the run computes in
  std::string requested;              // "auto", "fp32", "bf16"
  std::string reason;                 // one line: why this dtype (for the log and the manifest)
  std::string warning;                // non-empty: an explicit choice that is slow on this hardware
  GemmProbe probe;                    // zero unless a probe ran
};

// Resolves `requested` ("auto", "fp32"/"float32", "bf16"/"bfloat16") for `device` on a CPU with `cpu`.
// `probe` is called only when it can change the outcome (default: probe_gemm(device)). `what` names the
// option in errors (ConfigError for an unknown name).
DtypeChoice choose_compute_dtype(const std::string& requested, const CpuFeatures& cpu, c10::Device device = c10::kCPU,
                                 const GemmProbeFn& probe = {}, const std::string& what = "--dtype");

// "fp32" or "bf16" (or c10's name for other types).
std::string dtype_short_name(at::ScalarType t);

}  // namespace fme

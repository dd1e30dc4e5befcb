// The machine's matmul peak, measured in the same run as a benchmark so ratios survive a noisy machine.
#pragma once
#include <c10/core/ScalarType.h>

#include <cstdint>

namespace fme {

// Best-of-`reps` GFLOP/s of an n x n x n matmul in `dtype` (ATen's CPU GEMM: OpenBLAS for fp32, oneDNN for bf16).
double measure_gemm_gflops(at::ScalarType dtype, int64_t n = 2048, int reps = 5);

}  // namespace fme

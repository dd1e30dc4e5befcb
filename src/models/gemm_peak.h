// The machine's matmul peak, measured in the same run as a benchmark so ratios survive a noisy machine.
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>

namespace fme {

// Best-of-`reps` GFLOP/s of an n x n x n matmul in `dtype` on `device`, after one warm-up (ATen's CPU GEMM:
// OpenBLAS for fp32, oneDNN for bf16). Each timing reads one result element back, so an asynchronous device is
// waited for.
double measure_gemm_gflops(at::ScalarType dtype, int64_t n = 2048, int reps = 5, c10::Device device = c10::kCPU);

}  // namespace fme

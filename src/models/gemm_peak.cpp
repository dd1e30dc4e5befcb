#include "models/gemm_peak.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>

namespace fme {

double measure_gemm_gflops(at::ScalarType dtype, int64_t n, int reps, c10::Device device) {
  c10::InferenceMode guard;
  const auto on = at::TensorOptions().device(device);
  at::Tensor a = at::randn({n, n}, on).to(dtype), b = at::randn({n, n}, on).to(dtype);
  auto run = [&] { at::matmul(a, b).select(0, 0).select(0, 0).item<float>(); };
  run();  // warm-up: thread pool, packing buffers, oneDNN's JIT
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    run();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * double(n) * double(n) * double(n) / best / 1e9;
}

}  // namespace fme

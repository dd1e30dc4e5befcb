// Forward throughput of a model shape (default: the qwen2.5-0.5b preset, random weights) at batch B x T,
// all layers, fp32 and bf16: tokens/s and effective GFLOP/s next to the machine's GEMM peak measured in the
// same run (a square matmul of the same dtype). Prints one JSON line per dtype.
//   bench_forward [--preset NAME] [--batch 4] [--seq 512] [--reps 3] [--threads N] [--dtype fp32|bf16|both]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/nn/module.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "models/flops.h"
#include "models/gemm_peak.h"
#include "models/init.h"
#include "models/presets.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int main(int argc, char** argv) {
  std::string preset = "qwen2.5-0.5b", which = "both";
  int64_t B = 4, T = 512;
  int reps = 3, threads = static_cast<int>(std::thread::hardware_concurrency());
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--preset") preset = v;
    else if (k == "--batch") B = std::stoll(v);
    else if (k == "--seq") T = std::stoll(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--dtype") which = v;
    else {
      std::fprintf(stderr, "bench_forward: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  const auto& p = fme::find_preset(preset);
  if (!std::holds_alternative<fme::Qwen2Config>(p.config)) {
    std::fprintf(stderr, "bench_forward: only Qwen2 presets are supported\n");
    return 2;
  }
  auto model = fme::create_model(p.config);
  fme::init_weights(*model, 0);
  const double flops = fme::forward_flops(p.config, B, T);

  at::Tensor ids = at::randint(0, model->vocab_size(), {B, T}, at::kLong);
  fme::Batch batch{ids, at::ones({B, T}, at::kLong), {}};
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    if (which == "fp32" && dtype != at::kFloat) continue;
    if (which == "bf16" && dtype != at::kBFloat16) continue;
    model->to(dtype);
    const double peak = fme::measure_gemm_gflops(dtype);
    fme::ForwardOptions opts;
    model->forward(batch, opts);  // warm-up
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      double t0 = now();
      model->forward(batch, opts);
      best = std::min(best, now() - t0);
    }
    const double gflops = flops / best / 1e9;
    std::printf(
        "{\"bench\":\"forward\",\"preset\":\"%s\",\"dtype\":\"%s\",\"batch\":%lld,\"seq\":%lld,\"threads\":%d,"
        "\"seconds\":%.3f,\"tokens_per_s\":%.1f,\"gflops\":%.1f,\"gemm_peak_gflops\":%.1f,\"fraction_of_peak\":%.3f}\n",
        preset.c_str(), dtype == at::kFloat ? "fp32" : "bf16", (long long)B, (long long)T, threads, best, B * T / best,
        gflops, peak, gflops / peak);
    std::fflush(stdout);
  }
  return 0;
}

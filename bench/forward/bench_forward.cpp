// Forward throughput of a model shape (default: the qwen2.5-0.5b preset, random weights) at batch B x T,
// all layers, fp32 and bf16: tokens/s and effective GFLOP/s next to the machine's GEMM peak measured in the
// same run (a square matmul of the same dtype). Prints one JSON line per dtype.
//   bench_forward [--preset NAME] [--batch 4] [--seq 512] [--reps 3] [--threads N] [--dtype fp32|bf16|auto|both]
// Each line names the CPU and its ISA features (AVX-512, AVX512_BF16, AMX, AVX2, FMA, AES-NI, VAES).
// --capture-all also times the forward reporting every hook point (all 7 per block and the model's own),
// each copied out as extract's writer does, and compares the extra time with copying the same bytes alone
// (capture_overhead_over_copy: 1 means capturing costs exactly its copies).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/nn/module.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <vector>

#include "models/compute_dtype.h"
#include "bench/lib/flops.h"
#include "models/gemm_peak.h"
#include "models/init.h"
#include "models/presets.h"
#include "util/cpu_features.h"
#include "util/json.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_forward: forward tokens/s of a preset (random weights) next to the GEMM peak of the same dtype"};
  bool capture_all = false;
  std::string preset = "qwen2.5-0.5b", which = "both";
  int64_t B = 4, T = 512;
  int reps = 3, threads = static_cast<int>(std::thread::hardware_concurrency());
  app.add_option("--preset", preset, "preset (fme init --list)");
  app.add_flag("--capture-all", capture_all, "also time a forward that reports (and copies) every hook point");
  app.add_option("--batch", B, "sequences per batch")->check(CLI::PositiveNumber);
  app.add_option("--seq", T, "tokens per sequence")->check(CLI::PositiveNumber);
  app.add_option("--reps", reps, "timed repetitions (best is reported)")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "compute threads (default: all cores)")->check(CLI::PositiveNumber);
  app.add_option("--dtype", which, "fp32 | bf16 | auto | both (both: fp32 then bf16)")
      ->check(CLI::IsMember({"fp32", "bf16", "auto", "both"}));
  CLI11_PARSE(app, argc, argv);
  at::set_num_threads(threads);
  const auto& p = fme::find_preset(preset);
  auto model = fme::create_model(p.config);
  fme::init_weights(*model, 0);
  const double flops = fme::forward_flops(p.config, B, T);

  at::Tensor ids = at::randint(0, model->vocab_size(), {B, T}, at::kLong);
  fme::Batch batch{ids, at::ones({B, T}, at::kLong), {}};
  std::vector<at::ScalarType> dtypes;
  std::string auto_reason;
  if (which == "auto") {
    const fme::DtypeChoice c = fme::choose_compute_dtype("auto", fme::cpu_features());
    dtypes = {c.dtype};
    auto_reason = c.reason;
  } else {
    if (which != "bf16") dtypes.push_back(at::kFloat);
    if (which != "fp32") dtypes.push_back(at::kBFloat16);
  }
  const fme::Json cpu = fme::cpu_report();
  for (auto dtype : dtypes) {
    model->to(dtype);
    const double peak = fme::measure_gemm_gflops(dtype);
    const fme::Capture opts;  // every block, nothing reported
    model->forward(batch, opts);  // warm-up
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      double t0 = now();
      model->forward(batch, opts);
      best = std::min(best, now() - t0);
    }
    const double gflops = flops / best / 1e9;
    fme::Json j{{"bench", "forward"}, {"preset", preset},       {"dtype", fme::dtype_short_name(dtype)},
                {"batch", B},         {"seq", T},                {"threads", threads},
                {"seconds", best},    {"tokens_per_s", B * T / best}, {"gflops", gflops},
                {"gemm_peak_gflops", peak}, {"fraction_of_peak", gflops / peak}};
    if (!auto_reason.empty()) j["dtype_reason"] = auto_reason;
    if (capture_all) {
      // Every point copied to its own memory as it is reported (what extract's writer does with its rows).
      std::vector<at::Tensor> copies;
      const auto all = fme::Capture::all(model->hook_points(), [&](const std::string&, const at::Tensor& x) {
        copies.push_back(x.contiguous().clone());
      });
      // Plain and capturing forwards alternate, so that the machine's drift hits both alike.
      double with = 1e30, plain = 1e30, copy = 1e30;
      for (int r = 0; r < reps; ++r) {
        double t0 = now();
        model->forward(batch, opts);
        plain = std::min(plain, now() - t0);
        copies.clear();
        t0 = now();
        model->forward(batch, all);
        with = std::min(with, now() - t0);
      }
      // The same bytes copied alone, from sources already in memory.
      std::vector<at::Tensor> sources = copies;
      int64_t bytes = 0;
      for (const auto& s : sources) bytes += s.numel() * s.element_size();
      for (int r = 0; r < reps; ++r) {
        std::vector<at::Tensor> again;
        double t0 = now();
        for (const auto& s : sources) again.push_back(s.clone());
        copy = std::min(copy, now() - t0);
      }
      j["capture_all_points"] = sources.size();
      j["capture_all_bytes"] = bytes;
      j["plain_seconds_interleaved"] = plain;
      j["capture_all_seconds"] = with;
      j["copy_seconds"] = copy;
      j["capture_overhead_over_copy"] = (with - plain) / copy;
    }
    j.update(cpu);
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}

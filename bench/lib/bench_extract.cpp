#include "bench/lib/bench_extract.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <vector>

#include "models/compute_dtype.h"
#include "bench/lib/flops.h"
#include "models/gemm_peak.h"
#include "models/init.h"
#include "models/loader.h"
#include "models/presets.h"
#include "pipelines/extract/extract.h"
#include "pipelines/model_dir.h"
#include "util/cpu_features.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Runs the PyTorch eager peer over blocks 0..last_block; returns its tokens/s or a negative number if it
// could not run.
double peer_tokens_per_s(const std::string& script, const std::string& config_dir, const BenchExtractOptions& o,
                         int64_t last_block, bool bf16, int threads) {
  if (script.empty() || !fs::exists(script)) return -1;
  const std::string cmd = "/usr/bin/python3 " + script + " --bench " + config_dir + " --batch " + std::to_string(o.batch) +
                          " --seq " + std::to_string(o.seq) + " --layers " + std::to_string(last_block + 1) +
                          " --reps 3 --threads " + std::to_string(threads) + (bf16 ? " --bf16" : "") + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  if (pclose(p) != 0) return -1;
  try {
    return Json::parse(out.substr(out.find('{'))).at("tokens_per_s").get<double>();
  } catch (...) {
    return -1;
  }
}

}  // namespace

int run_bench_extract(const BenchExtractOptions& o) {
  const int threads = o.threads > 0 ? o.threads : at::get_num_threads();
  const Preset& preset = find_preset(o.preset);
  const fs::path work = o.work_dir.empty() ? fs::temp_directory_path() / ("fme-bench-extract-" + std::to_string(getpid()))
                                           : fs::path(o.work_dir);
  fs::remove_all(work);
  fs::create_directories(work);

  // The model (random weights, stored bf16 to halve the write) and a dataset of exactly batch*batches samples
  // of seq random tokens, so every batch is batch x seq with no padding — the seed's configuration.
  int64_t vocab = 0, num_layers = 0;
  {
    auto model = create_model(preset.config, at::TensorOptions().dtype(at::kBFloat16));
    init_weights(*model, 0);
    write_model_dir(*model, (work / "model").string(), at::kBFloat16, "");
    vocab = model->vocab_size();
    num_layers = model->num_layers();
  }
  // The seed stored layers 10-23 of 24: by default the last 14 blocks (all of a shallower model).
  const std::string layers = !o.layers.empty() ? o.layers
                                               : std::to_string(std::max<int64_t>(0, num_layers - 14)) + "-" +
                                                     std::to_string(num_layers - 1);
  {
    std::mt19937_64 rng(1);
    std::string lines;
    for (int64_t s = 0; s < o.batch * o.batches; ++s) {
      lines += "{\"input_ids\":[";
      for (int64_t t = 0; t < o.seq; ++t) lines += (t ? "," : "") + std::to_string(rng() % vocab);
      lines += "]}\n";
    }
    write_file_atomic((work / "tokens.jsonl").string(), lines);
  }
  std::string peer = o.peer;
  if (peer.empty()) peer = (fs::path(FME_SOURCE_DIR) / "bench/peers/torch_peer.py").string();

  // Rows: the requested dtypes, `auto` resolved on this machine. bf16 is left out by default where the CPU
  // has no native bf16 (there the seed config would take over ten minutes and says nothing new).
  std::vector<std::string> rows;
  {
    std::string list = o.dtypes;
    if (list.empty()) list = cpu_features().native_bf16() ? "auto,fp32,bf16" : "auto,fp32";
    std::stringstream ss(list);
    for (std::string d; std::getline(ss, d, ',');)
      if (!d.empty()) rows.push_back(d);
  }
  std::map<std::string, double> tps_of, peer_of;  // by resolved dtype: explicit rows' tokens/s, peer tokens/s
  double auto_tps = 0;
  std::string auto_dtype;
  const Json cpu = cpu_report();
  for (const std::string& request : rows) {
    const DtypeChoice choice = choose_compute_dtype(request, cpu_features(), c10::kCPU, {}, "--dtypes");
    const at::ScalarType st = choice.dtype;
    const std::string dtype = dtype_short_name(st);
    const double peak = measure_gemm_gflops(st);

    ExtractOptions e;
    e.model_dir = (work / "model").string();
    e.dataset = (work / "tokens.jsonl").string();
    e.out = (work / ("run-" + request)).string();
    e.layers = layers;
    e.dtype = request;
    e.batch_size = o.batch;
    e.bucket_window = o.batch;  // batches of consecutive samples, as the seed
    e.quiet = true;
    fs::remove_all(e.out);
    // The same batches through the forward pass alone (stopping after the deepest requested block), run
    // before and after the pipeline: the machine drifts by several percent within minutes, so both are shown.
    auto model = load_model(e.model_dir, st);
    const int64_t last = parse_layers(layers, model->num_layers()).back();
    auto forward_only_pass = [&] {
      std::mt19937_64 rng(1);
      double seconds = 0;
      for (int64_t b = 0; b < o.batches; ++b) {
        at::Tensor ids = at::empty({o.batch, o.seq}, at::kLong);
        auto acc = ids.accessor<int64_t, 2>();
        for (int64_t i = 0; i < o.batch; ++i)
          for (int64_t t = 0; t < o.seq; ++t) acc[i][t] = static_cast<int64_t>(rng() % vocab);
        const Capture capture(model->hook_points(), {block_hook_name(last, BlockPoint::ResidPost)},
                              [](const std::string&, const at::Tensor&) {});
        const double t0 = now();
        model->forward(Batch{ids, at::ones_like(ids), {}}, capture);
        seconds += now() - t0;
      }
      return seconds;
    };
    // The peer runs right before and right after fme for the same reason; its figure is the mean of the two.
    const bool bf16 = st == at::kBFloat16;
    const double peer_before = peer_tokens_per_s(peer, e.model_dir, o, last, bf16, threads);
    const double forward_before = forward_only_pass();
    model.reset();  // extract loads its own copy
    ExtractSummary s = run_extract(e);
    model = load_model(e.model_dir, st);
    const double forward_after = forward_only_pass();
    model.reset();
    const double peer_after = peer_tokens_per_s(peer, e.model_dir, o, last, bf16, threads);
    const double forward_only = (forward_before + forward_after) / 2;
    const double flops = forward_flops(preset.config, o.batch, o.seq, last) * o.batches;
    const double tps = s.tokens / s.pipeline_seconds;
    const double peer_tps = peer_before > 0 && peer_after > 0 ? (peer_before + peer_after) / 2 : -1;
    peer_of[dtype] = std::max(peer_of.count(dtype) ? peer_of[dtype] : 0.0, peer_tps);
    Json j{{"bench", "extract"},
           {"preset", o.preset},
           {"dtype_requested", request},
           {"dtype", dtype},
           {"dtype_reason", choice.reason},
           {"out_dtype", s.out_dtype},
           {"batch", o.batch},
           {"seq", o.seq},
           {"batches", o.batches},
           {"layers", layers},
           {"threads", threads},
           {"tokens", s.tokens},
           {"seconds_total_with_model_load", s.seconds},
           {"seconds_end_to_end", s.pipeline_seconds},
           {"seconds_forward_in_pipeline", s.forward_seconds},
           {"seconds_forward_only_before", forward_before},
           {"seconds_forward_only_after", forward_after},
           {"seconds_forward_only", forward_only},
           // Does compute wait for the reader or writer? End to end over the forward time inside the same run.
           {"end_to_end_over_forward_in_pipeline", s.pipeline_seconds / s.forward_seconds},
           {"end_to_end_over_forward_only", s.pipeline_seconds / forward_only},
           {"tokens_per_s", tps},
           {"samples_per_s", s.stored_samples / s.pipeline_seconds},
           {"effective_gflops", flops / s.pipeline_seconds / 1e9},
           {"gemm_peak_gflops", peak},
           {"fraction_of_gemm_peak", flops / s.pipeline_seconds / 1e9 / peak},
           {"bytes_written", s.bytes}};
    j.update(cpu);
    if (peer_tps > 0) {
      j["pytorch_eager_tokens_per_s"] = peer_tps;
      j["pytorch_eager_tokens_per_s_before"] = peer_before;
      j["pytorch_eager_tokens_per_s_after"] = peer_after;
      j["speedup_vs_pytorch_eager"] = tps / peer_tps;
    } else {
      j["pytorch_eager_tokens_per_s"] = nullptr;  // peer not found or failed: reported, not hidden
    }
    std::cout << j.dump() << std::endl;
    if (request == "auto") {
      auto_tps = tps;
      auto_dtype = dtype;
    } else {
      tps_of[dtype] = std::max(tps_of[dtype], tps);
    }
  }
  // The default against the fastest explicit setting, and against PyTorch in its best dtype here.
  if (auto_tps > 0) {
    Json sumj{{"bench", "extract-summary"}, {"auto_dtype", auto_dtype}, {"auto_tokens_per_s", auto_tps}};
    double best_explicit = 0, best_peer = 0;
    std::string best_explicit_dtype, best_peer_dtype;
    for (const auto& [d, t] : tps_of)
      if (t > best_explicit) best_explicit = t, best_explicit_dtype = d;
    for (const auto& [d, t] : peer_of)
      if (t > best_peer) best_peer = t, best_peer_dtype = d;
    if (best_explicit > 0) {
      sumj["fastest_explicit_dtype"] = best_explicit_dtype;
      sumj["auto_over_fastest_explicit"] = auto_tps / best_explicit;
    }
    if (best_peer > 0) {
      sumj["pytorch_best_dtype"] = best_peer_dtype;
      sumj["auto_speedup_vs_pytorch_best"] = auto_tps / best_peer;
    }
    sumj.update(cpu);
    std::cout << sumj.dump() << std::endl;
  }
  fs::remove_all(work);
  return 0;
}

}  // namespace fme

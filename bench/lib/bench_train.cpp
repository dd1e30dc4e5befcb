#include "bench/lib/bench_train.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "models/gemm_peak.h"
#include "models/init.h"
#include "models/model.h"
#include "models/presets.h"
#include "models/tensor_io.h"
#include "pipelines/model_dir.h"
#include "pipelines/train/train.h"
#include "util/cpu_features.h"
#include "util/error.h"
#include "util/json.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

// The peer's JSON line (its median step), or null when it cannot run.
Json run_peer(const std::string& script, const std::string& model_dir, int64_t batch, int64_t seq, bool bf16, int threads) {
  if (script.empty() || !fs::exists(script)) return nullptr;
  const std::string cmd = "/usr/bin/python3 " + script + " --bench " + model_dir + " --batch " + std::to_string(batch) +
                          " --seq " + std::to_string(seq) + " --reps 3 --threads " + std::to_string(threads) +
                          (bf16 ? " --bf16-autocast" : "") + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return nullptr;
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  if (pclose(p) != 0 || out.find('{') == std::string::npos) return nullptr;
  try {
    return Json::parse(out.substr(out.find('{')));
  } catch (...) {
    return nullptr;
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Random ids; labels as the objective trains: 15% of positions for masked LM (as the peer), every token for
// next-token.
void write_inputs(const std::string& path, int64_t batch, int64_t seq, int64_t vocab, bool mlm) {
  std::mt19937_64 rng(1);
  at::Tensor ids = at::empty({batch, seq}, at::kLong), labels = at::full({batch, seq}, -100, at::kLong);
  auto a = ids.accessor<int64_t, 2>();
  auto l = labels.accessor<int64_t, 2>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < seq; ++t) {
      a[b][t] = static_cast<int64_t>(rng() % vocab);
      if (!mlm || rng() % 100 < 15 || (b == 0 && t == 0)) l[b][t] = a[b][t];
    }
  write_safetensors(path, {{"input_ids", ids}, {"attention_mask", at::ones_like(ids)}, {"labels", labels}});
}

// Runs `fme train` (this executable) as a child with `args`; its peak RSS in bytes, or -1 when it failed.
int64_t child_peak_rss(const std::vector<std::string>& args, std::string* error) {
  std::vector<char*> argv;
  static char self[] = "/proc/self/exe";
  argv.push_back(self);
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    const int null = open("/dev/null", O_WRONLY);  // its summary line is not this report's
    if (null >= 0) dup2(null, STDOUT_FILENO);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  int status = 0;
  struct rusage ru {};
  if (wait4(pid, &status, 0, &ru) != pid) return -1;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (error) *error = WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status)) + " (out of memory?)"
                                            : "exit status " + std::to_string(WEXITSTATUS(status));
    return -1;
  }
  return int64_t(ru.ru_maxrss) * 1024;
}

int64_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  for (std::string key; in >> key;) {
    int64_t kb = 0;
    in >> kb;
    if (key == "MemAvailable:") return kb * 1024;
    in.ignore(1 << 10, '\n');
  }
  return 0;
}

// The memory-fit report: one JSON line per seed-table BERT preset, then the verdict.
int run_fit(const BenchTrainOptions& o, const fs::path& work, int threads) {
  const int64_t budget = int64_t(o.fit_gib * double(int64_t(1) << 30));
  const std::vector<std::string> table = {"bert-4l-768h", "bert-12l-1024h", "bert-24l-2048h", "bert-36l-2048h", "bert-48l-2048h",
                                          "bert-60l-2048h"};
  const int64_t batch = o.batch > 0 ? o.batch : 8, seq = o.seq > 0 ? o.seq : 128;
  auto params_of = [](const std::string& name) {
    auto model = create_model(find_preset(name).config, at::TensorOptions().device(at::kMeta));
    int64_t n = 0;
    for (auto& [k, p] : model->named_parameters()) n += p.numel();
    return n;
  };
  fs::create_directories(work);
  const std::string inputs = (work / "inputs.safetensors").string();
  write_inputs(inputs, batch, seq, create_model(find_preset("bert-4l-768h").config, at::TensorOptions().device(at::kMeta))->vocab_size(), true);
  auto step = [&](const std::string& name, std::string* error) {
    const std::string out = (work / ("fit-" + name)).string();
    fs::remove_all(out);
    const int64_t rss = child_peak_rss({"train", "--model-preset", name, "--inputs", inputs, "--steps", "1", "--optimizer", "adamw",
                                        "--dropout", "0", "--quiet", "--threads", std::to_string(threads), "--out", out},
                                       error);
    fs::remove_all(out);
    return rss;
  };
  // The measured step: its peak over its parameters, the fixed part (the runtime, the batch's activations)
  // taken from bert-4l-768h's step so that bytes per parameter is the slope between the two.
  std::string error;
  const std::string small = "bert-4l-768h", ref = "bert-12l-1024h";
  const int64_t rss_small = step(small, &error), rss_ref = step(ref, &error);
  if (rss_small < 0 || rss_ref < 0) throw Error("fme bench train --fit: the measured step failed: " + error);
  const double per_param = double(rss_ref - rss_small) / double(params_of(ref) - params_of(small));
  const double fixed = double(rss_small) - per_param * double(params_of(small));
  std::string largest;
  for (const auto& name : table) {
    const int64_t n = params_of(name);
    const double predicted = fixed + per_param * double(n);
    if (predicted <= double(budget)) largest = name;
    std::cout << Json{{"bench", "train-fit"}, {"preset", name}, {"params", n}, {"predicted_peak_bytes", int64_t(predicted)},
                      {"fits", predicted <= double(budget)}}.dump() << std::endl;
  }
  Json verdict{{"bench", "train-fit"},
               {"budget_gib", o.fit_gib},
               {"batch", batch},
               {"seq", seq},
               {"measured", {{small, rss_small}, {ref, rss_ref}}},
               {"peak_bytes_per_param", per_param},
               {"fixed_bytes", int64_t(fixed)},
               {"largest_that_fits", largest.empty() ? Json() : Json(largest)}};
  verdict.update(cpu_report());
  if (!largest.empty() && largest != small && largest != ref) {
    const double predicted = fixed + per_param * double(params_of(largest));
    const int64_t avail = mem_available_bytes();
    if (double(avail) > predicted * 1.05) {
      const int64_t rss = step(largest, &error);
      verdict["checked_peak_bytes"] = rss >= 0 ? Json(rss) : Json();
      verdict["checked_fits"] = rss >= 0 && rss <= budget;
      if (rss < 0) verdict["checked_error"] = error;
    } else {
      verdict["checked_peak_bytes"] = nullptr;
      verdict["not_checked_because"] = "needs ~" + std::to_string(int64_t(predicted) >> 20) + " MiB, MemAvailable is " +
                                       std::to_string(avail >> 20) + " MiB";
    }
  }
  std::cout << verdict.dump() << std::endl;
  fs::remove_all(work);
  return 0;
}

}  // namespace

int run_bench_train(const BenchTrainOptions& o) {
  const int threads = o.threads > 0 ? o.threads : at::get_num_threads();
  const fs::path work = o.work_dir.empty() ? fs::temp_directory_path() / ("fme-bench-train-" + std::to_string(getpid()))
                                           : fs::path(o.work_dir);
  if (o.fit_gib > 0) return run_fit(o, work, threads);
  std::string peer = o.peer;
  if (peer.empty()) peer = (fs::path(FME_SHARED_TOOLS) / "torch_train.py").string();
  std::vector<std::string> presets = o.presets;
  if (presets.empty()) presets = {"bert-4l-768h", "qwen2.5-0.5b"};
  std::vector<std::string> precisions;
  {
    std::stringstream ss(o.precisions.empty() ? (cpu_features().native_bf16() ? "fp32,bf16-mixed" : "fp32") : o.precisions);
    for (std::string p; std::getline(ss, p, ',');)
      if (!p.empty()) precisions.push_back(p);
  }
  const Json cpu = cpu_report();
  for (const std::string& name : presets) {
    const Preset& preset = find_preset(name);
    fs::remove_all(work);
    fs::create_directories(work);
    const std::string model_dir = (work / "model").string(), inputs = (work / "inputs.safetensors").string();
    int64_t params = 0, vocab = 0;
    bool mlm = false;
    {
      auto model = create_model(preset.config, at::TensorOptions().dtype(at::kFloat));
      init_weights(*model, 0);
      write_model_dir(*model, model_dir, at::kFloat, "");
      for (auto& [n, p] : model->named_parameters()) params += p.numel();
      vocab = model->vocab_size();
      mlm = model->token_types() > 0;  // BERT: the masked-LM objective (fme train's auto)
    }
    const int64_t batch = o.batch > 0 ? o.batch : (mlm ? 8 : 1), seq = o.seq > 0 ? o.seq : (mlm ? 128 : 512);
    write_inputs(inputs, batch, seq, vocab, mlm);
    for (const std::string& precision : precisions) {
      const at::ScalarType st = precision == "fp32" ? at::kFloat : at::kBFloat16;
      const double peak_before = measure_gemm_gflops(st);
      // The peer runs right before and right after fme: the machine drifts by tens of percent within minutes.
      const Json peer_before = run_peer(peer, model_dir, batch, seq, st == at::kBFloat16, threads);
      TrainOptions t;
      t.model_dir = model_dir;
      t.inputs = inputs;
      t.out = (work / ("run-" + precision)).string();
      t.steps = std::max<int64_t>(2, o.steps);
      t.optim.lr = 1e-4;
      t.precision = precision;
      t.dropout = "0";  // the peer runs without dropout
      t.quiet = true;
      t.threads = threads;
      fs::remove_all(t.out);
      const TrainSummary s = run_train(t);
      // The first steps are slower (1.5-3x here): the allocator's first touches of each page, which on this VM
      // also fault in the host's memory, and the optimizer state's. They are reported, and the median of the
      // rest is the step a long run takes.
      std::vector<double> step_s, fb_s, opt_s, warmup_s;
      const int64_t warmup = std::min<int64_t>(3, t.steps - 1);
      std::ifstream metrics(t.out + "/metrics.jsonl");
      int64_t n = 0;
      for (std::string line; std::getline(metrics, line); ++n) {
        const Json m = Json::parse(line);
        const double fb = m["seconds"]["forward_backward"], op = m["seconds"]["optimizer"];
        if (n < warmup) {
          warmup_s.push_back(fb + op);
          continue;
        }
        step_s.push_back(fb + op);
        fb_s.push_back(fb);
        opt_s.push_back(op);
      }
      const double step = median(step_s), tokens = double(batch * seq);
      const double best_step = step_s.empty() ? 0 : *std::min_element(step_s.begin(), step_s.end());
      const double flops = 6.0 * double(params) * tokens;  // forward 2, backward 4 per parameter and token
      // The peak is the best of short GEMM runs, before and after fme's steps (the higher counts): the fraction
      // sets it against the best timed step, like against like; a step's median, which takes in whatever else
      // the host ran meanwhile, is reported beside it.
      const double peak = std::max(peak_before, measure_gemm_gflops(st));
      const Json peer_after = run_peer(peer, model_dir, batch, seq, st == at::kBFloat16, threads);
      struct rusage ru {};
      getrusage(RUSAGE_SELF, &ru);
      Json j{{"bench", "train"},
             {"preset", name},
             {"objective", s.objective},
             {"precision", s.precision},
             {"batch", batch},
             {"seq", seq},
             {"params", params},
             {"threads", threads},
             {"steps_timed", int64_t(step_s.size())},
             {"warmup_step_s", warmup_s},
             {"step_s", step},
             {"best_step_s", best_step},
             {"forward_backward_s", median(fb_s)},
             {"optimizer_s", median(opt_s)},
             {"tokens_per_s", tokens / step},
             {"gemm_peak_gflops", peak},
             {"fraction_of_gemm_peak", flops / best_step / 1e9 / peak},
             {"fraction_of_gemm_peak_median_step", flops / step / 1e9 / peak},
             {"peak_rss_bytes_per_param", double(ru.ru_maxrss) * 1024.0 / double(params)}};
      j.update(cpu);
      if (peer_before.is_object() && peer_after.is_object()) {
        const double peer_step = (peer_before["median_s"].get<double>() + peer_after["median_s"].get<double>()) / 2;
        j["pytorch_step_s"] = peer_step;
        j["pytorch_step_s_before"] = peer_before["median_s"];
        j["pytorch_step_s_after"] = peer_after["median_s"];
        j["pytorch_parts_s_after"] = peer_after["median_parts_s"];
        j["speedup_vs_pytorch"] = peer_step / step;
      } else {
        j["pytorch_step_s"] = nullptr;  // peer not found or failed: reported, not hidden
      }
      std::cout << j.dump() << std::endl;
    }
  }
  fs::remove_all(work);
  return 0;
}

}  // namespace fme

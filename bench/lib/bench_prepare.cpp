#include "dist/launch_env.h"
#include "bench/lib/bench_prepare.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include "models/presets.h"
#include "util/error.h"
#include "util/file.h"
#include "fill/counter_rng.h"
#include "fill/fresh_memory.h"
#include "util/cpu_features.h"
#include "util/json.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

// The seed's first-call seconds (JAX, 4 TPU chips) for the same presets.
const std::map<std::string, double> kSeedSeconds{{"bert-4l-768h", 1.24},   {"bert-12l-1024h", 3.86},
                                                 {"bert-24l-2048h", 10.28}, {"bert-36l-2048h", 17.74},
                                                 {"bert-48l-2048h", 23.44}, {"bert-60l-2048h", 32.38}};


int64_t bert_params(const BertConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  const int64_t layer = 4 * (H * H + H) + (H * I + I) + (I * H + H) + 4 * H;
  return (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * H + 2 * H + c.num_hidden_layers * layer + H * H + H;
}

// Runs `command` as one child process and returns its last JSON line.
Json run_child(const std::string& command) {
  const std::string log = (fs::temp_directory_path() / ("fme-bench-prepare-" + std::to_string(getpid()))).string();
  const int status = dist::run_local_world(1, command, log, /*merge_stderr=*/true);
  std::string out = read_file(log + "0");
  fs::remove(log + "0");
  const auto brace = out.rfind("\n{");
  const size_t at = brace == std::string::npos ? out.find('{') : brace + 1;
  if (status != 0 || at == std::string::npos) return Json{{"error", out.empty() ? "failed" : out}};
  return Json::parse(out.substr(at));
}

// The floor in a new process (as prepare meets memory), 2 threads; `flags` picks the kind (--huge-pages, --populate).
double floor_seconds(size_t bytes, const std::string& flags) {
  const std::string exe = fs::read_symlink("/proc/self/exe").string();
  Json r = run_child(exe + " bench floor --bytes " + std::to_string(bytes) + " --threads 2" + flags);
  if (r.contains("error")) throw Error("bench prepare: the floor measurement failed: " + r["error"].get<std::string>());
  return r["seconds"].get<double>();
}

// Runs `world` fme prepare processes; returns rank 0's JSON summary (or a JSON with "error").
Json run_prepare(const std::string& preset, int world, bool first_step) {
  const std::string exe = fs::read_symlink("/proc/self/exe").string();
  const std::string log = (fs::temp_directory_path() / ("fme-bench-prepare-" + std::to_string(getpid()))).string();
  const std::string command = exe + " prepare --model-preset " + preset + " --plan builtin:bert-tp" +
                              (world > 1 ? " --mesh tp=" + std::to_string(world) : std::string()) +
                              " --optimizer adamw --lr 1e-4 --json" + (first_step ? " --first-step" : "") +
                              " --threads " + std::to_string(world > 1 ? 1 : 2);
  const int status = dist::run_local_world(world, command, log, /*merge_stderr=*/true);
  std::string out = read_file(log + "0");
  for (int r = 0; r < world; ++r) fs::remove(log + std::to_string(r));
  if (status != 0 || out.find('{') == std::string::npos) return Json{{"error", out.empty() ? "failed" : out}};
  return Json::parse(out.substr(out.find('{')));
}

}  // namespace

int run_bench_prepare(const BenchPrepareOptions& o) {
  for (const auto& name : o.presets) {
    const auto* cfg = std::get_if<BertConfig>(&find_preset(name).config);
    if (!cfg) throw ConfigError("bench prepare: '" + name + "' is not a BERT preset");
    const int64_t params = bert_params(*cfg);
    for (int tp : o.tp) {
      Json row{{"bench", "prepare"}, {"preset", name}, {"tp", tp}, {"params", params}, {"optimizer", "adamw"},
               {"seed_seconds", kSeedSeconds.count(name) ? kSeedSeconds.at(name) : 0.0},
               {"rng_kernel", rng_kernel_name()}};
      row.update(cpu_report());
      // Resident at once: the parameters (fp32) of all processes; AdamW's state stays on untouched zero pages.
      const double gib = params * 4.0 / (1ull << 30);
      if (gib > o.memory_budget_gib) {
        row["skipped"] = "parameters need " + std::to_string(gib) + " GiB, more than the budget";
        std::cout << row.dump() << std::endl;
        continue;
      }
      const double step_gib = params * 16.0 / (1ull << 30);
      const bool first_step = step_gib <= o.memory_budget_gib;
      std::vector<double> prep_s, floor_s, floor_huge_s, floor_populate_s;
      Json r;
      for (int rep = 0; rep < std::max(1, o.repeats); ++rep) {
        // The first optimizer step only once (it touches the state, which the floor does not cover).
        Json rr = run_prepare(name, tp, first_step && rep == 0);
        if (rr.contains("error")) {
          r = rr;
          break;
        }
        if (rep == 0) r = rr;
        prep_s.push_back(rr["ms"]["total"].get<double>() / 1000);
        // The floor: every process's bytes first-touched by 2 threads in one new process.
        const size_t bytes = static_cast<size_t>(rr["local_param_bytes"].get<int64_t>()) * tp;
        floor_s.push_back(floor_seconds(bytes, ""));
        floor_huge_s.push_back(floor_seconds(bytes, " --huge-pages"));
        floor_populate_s.push_back(floor_seconds(bytes, " --populate"));
      }
      if (r.contains("error")) {
        row["error"] = r["error"];
        std::cout << row.dump() << std::endl;
        continue;
      }
      auto best = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
      const double total_s = best(prep_s);
      row["seconds"] = total_s;
      row["seconds_first"] = prep_s.front();
      row["seconds_all"] = prep_s;
      row["ms_first"] = r["ms"];
      row["bytes_written"] = r["local_param_bytes"].get<int64_t>() * tp;
      row["optimizer_state_bytes_per_process"] = r["optimizer_state_bytes"];
      row["optimizer_state_on_untouched_zero_pages"] = r["optimizer_state_untouched"];
      row["first_touch_floor_seconds"] = best(floor_s);
      row["first_touch_floor_all"] = floor_s;
      row["first_touch_floor_hugepage_seconds"] = best(floor_huge_s);
      row["first_touch_floor_hugepage_all"] = floor_huge_s;
      row["first_touch_floor_populate_seconds"] = best(floor_populate_s);
      row["first_touch_floor_populate_all"] = floor_populate_s;
      row["ratio_to_floor"] = total_s / best(floor_s);
      row["ratio_to_hugepage_floor"] = total_s / best(floor_huge_s);
      row["ratio_to_populate_floor"] = total_s / best(floor_populate_s);
      row["speedup_vs_seed"] = row["seed_seconds"].get<double>() / total_s;
      if (r.contains("first_step_ms")) row["first_optimizer_step_seconds"] = r["first_step_ms"].get<double>() / 1000;
      else
        row["first_optimizer_step_seconds"] = "not run: parameters, gradients and AdamW moments need " +
                                              std::to_string(step_gib) + " GiB, more than the budget";
      std::cout << row.dump() << std::endl;
    }
  }
  return 0;
}

int run_bench_floor(const BenchFloorOptions& o) {
  FreshBuffer b(o.bytes, o.huge_pages);
  auto t0 = std::chrono::steady_clock::now();
  if (o.fill) {
    const int64_t n = static_cast<int64_t>(o.bytes / 4);
    fill_normal(static_cast<float*>(b.data()), 1, n, n, 0, 0, 1234, 0.0f, 0.02f, o.threads, RngKernel::kAuto, true);
  } else {
    first_touch(b.data(), o.bytes, o.threads, o.populate ? TouchMethod::kPopulate : TouchMethod::kWrite);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Json j{{"bench", "floor"}, {"bytes", o.bytes},     {"threads", o.threads}, {"huge_pages", o.huge_pages},
         {"populate", o.populate}, {"fill", o.fill}, {"seconds", s},        {"GB_per_s", o.bytes / s / 1e9}};
  if (o.fill) j["rng_kernel"] = rng_kernel_name();
  j.update(cpu_report());
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace fme

// bench_load: how fast a checkpoint becomes a model, against reading the same bytes from page cache.
// Writes a preset's model directory (random weights, in --file-dtype) once, warms the page cache with a
// first read, then times (a) `cat model.safetensors > /dev/null` and (b) load_model into weights of each
// dtype, and prints GB/s (checkpoint bytes over seconds) and the ratio to cat, one JSON line each, with the
// CPU and its ISA features. Leaves out cold reads from disk (a property of the disk, not of fme).
//   bench_load [--preset qwen2.5-0.5b] [--file-dtype bf16] [--reps 3] [--threads N] [--work-dir DIR]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "models/compute_dtype.h"
#include "models/init.h"
#include "models/loader.h"
#include "models/presets.h"
#include "models/tensor_io.h"
#include "pipelines/model_dir.h"
#include "util/cpu_features.h"
#include "util/json.h"

namespace fs = std::filesystem;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_load: checkpoint -> model, against cat of the same file from page cache"};
  std::string preset = "qwen2.5-0.5b", file_dtype = "bf16", work;
  int reps = 3, threads = static_cast<int>(std::thread::hardware_concurrency());
  app.add_option("--preset", preset, "model preset (fme init --list)");
  app.add_option("--file-dtype", file_dtype, "dtype stored in the checkpoint: bf16 | fp32");
  app.add_option("--reps", reps, "timed repetitions (best is reported)")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "compute threads")->check(CLI::PositiveNumber);
  app.add_option("--work-dir", work, "scratch directory (default: a temp dir, removed after)");
  CLI11_PARSE(app, argc, argv);
  try {
    at::set_num_threads(threads);
    const fs::path dir = work.empty() ? fs::temp_directory_path() / ("fme-bench-load-" + std::to_string(getpid())) : fs::path(work);
    fs::remove_all(dir);
    const at::ScalarType fdt = fme::parse_scalar_type(file_dtype, "--file-dtype", false);
    {
      auto model = fme::create_model(fme::find_preset(preset).config, at::TensorOptions().dtype(fdt));
      fme::init_weights(*model, 0);
      fme::write_model_dir(*model, (dir / "model").string(), fdt, "");
    }
    const std::string file = (dir / "model" / "model.safetensors").string();
    const double bytes = static_cast<double>(fs::file_size(file));
    const fme::Json cpu = fme::cpu_report();
    const std::string cat = "cat '" + file + "' > /dev/null";
    if (std::system(cat.c_str()) != 0) throw fme::Error("cat failed");  // warm the page cache
    double cat_s = 1e30;
    for (int r = 0; r < reps; ++r) {
      const double t0 = now();
      if (std::system(cat.c_str()) != 0) throw fme::Error("cat failed");
      cat_s = std::min(cat_s, now() - t0);
    }
    fme::Json c{{"bench", "load"}, {"what", "cat FILE > /dev/null (page cache)"}, {"bytes", bytes},
                {"seconds", cat_s}, {"GB_per_s", bytes / cat_s / 1e9}};
    c.update(cpu);
    std::printf("%s\n", c.dump().c_str());
    for (at::ScalarType wdt : {at::kBFloat16, at::kFloat}) {
      double best = 1e30;
      for (int r = 0; r < reps; ++r) {
        const double t0 = now();
        auto m = fme::load_model((dir / "model").string(), at::kFloat, wdt);
        best = std::min(best, now() - t0);
      }
      fme::Json j{{"bench", "load"},        {"what", "load_model"},  {"preset", preset},
                  {"file_dtype", file_dtype}, {"weights_dtype", fme::dtype_short_name(wdt)},
                  {"bytes", bytes},         {"threads", threads},    {"seconds", best},
                  {"GB_per_s", bytes / best / 1e9}, {"ratio_to_cat", best / cat_s}};
      j.update(cpu);
      std::printf("%s\n", j.dump().c_str());
      std::fflush(stdout);
    }
    if (work.empty()) fs::remove_all(dir);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_load: %s\n", e.what());
    return 1;
  }
}

// Options shared by several subcommands.
#include <ATen/Parallel.h>
#include <c10/core/ScalarType.h>

#include <thread>

#include "cli/command.h"
#include "util/error.h"

namespace fme::cli {

void add_threads_option(CLI::App* cmd, int* threads) {
  *threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cmd->add_option("--threads", *threads, "Compute threads (default: all cores)")->check(CLI::PositiveNumber);
}

void apply_threads(int threads) {
  at::set_num_threads(threads);
  // Inter-op threads can only be set before first use; fme runs one op at a time per stream anyway.
  try {
    at::set_num_interop_threads(1);
  } catch (...) {
  }
}

int parse_dtype_name(const std::string& name) {
  if (name == "fp32" || name == "float32" || name == "f32") return static_cast<int>(at::kFloat);
  if (name == "bf16" || name == "bfloat16") return static_cast<int>(at::kBFloat16);
  throw ConfigError("--dtype: expected fp32 or bf16, got '" + name + "'");
}

}  // namespace fme::cli

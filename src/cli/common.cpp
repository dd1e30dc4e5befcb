// Options shared by several subcommands.
#include <ATen/Parallel.h>
#include <c10/core/ScalarType.h>

#include <chrono>
#include <thread>

#include "cli/command.h"
#include "dist/launch_env.h"
#include "dist/process_group.h"
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


std::shared_ptr<dist::Dist> start_dist(const std::string& mesh, double timeout_s) {
  dist::LaunchEnv env = dist::launch_env_from_environment();
  if (!env.is_distributed() && mesh.empty()) return nullptr;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  return dist::Dist::init(env, dist::Mesh::parse(mesh, env.world_size), timeout);
}

}  // namespace fme::cli

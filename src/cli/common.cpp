// Options shared by several subcommands.
#include <chrono>

#include "cli/command.h"
#include "dist/launch_env.h"
#include "dist/process_group.h"
#include "util/error.h"

namespace fme::cli {

void add_threads_option(CLI::App* cmd, int* threads) {
  *threads = default_threads();
  // Checked by apply_threads (shared with the Python binding), not by CLI11.
  cmd->add_option("--threads", *threads, "Compute threads (default: all cores)");
}

std::shared_ptr<dist::Dist> start_dist(const std::string& mesh, double timeout_s) {
  dist::LaunchEnv env = dist::launch_env_from_environment();
  if (!env.is_distributed() && mesh.empty()) return nullptr;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  return dist::Dist::init(env, plans::Mesh::parse(mesh, env.world_size), timeout);
}

}  // namespace fme::cli

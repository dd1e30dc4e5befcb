#include "pipelines/threads.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <string>
#include <thread>

#include "util/error.h"

namespace fme {

int default_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

void apply_threads(int threads) {
  if (threads < 1) throw ConfigError("--threads: expected a positive number, got " + std::to_string(threads));
  at::set_num_threads(threads);
  // Inter-op threads can only be set before first use; a later call (a second job in one process) keeps them.
  try {
    at::set_num_interop_threads(1);
  } catch (...) {
  }
}

}  // namespace fme

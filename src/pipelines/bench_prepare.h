// `fme bench prepare`: the seed's make_module_opt table — BERT presets with the seed's tensor-parallel plan
// and AdamW — at tp=1 and tp=2 (2 processes on this machine), each next to the floor this VM sets: the
// time to first-touch the same number of fresh bytes with the same threads (4 KiB pages and huge pages),
// measured in the same run, each in its own new process. Each row runs `repeats` rounds of (prepare, floor, huge-page floor) back to back,
// so all three see memory in the same state, and reports the best of each plus every sample: on a VM that
// hands freed memory back to the host, the first round faults in host memory too (reported as "first").
#pragma once
#include <string>
#include <vector>

namespace fme {

struct BenchPrepareOptions {
  std::vector<std::string> presets{"bert-4l-768h",   "bert-12l-1024h", "bert-24l-2048h",
                                   "bert-36l-2048h", "bert-48l-2048h", "bert-60l-2048h"};
  std::vector<int> tp{1, 2};
  // Skip (and say so) what would not fit: prepare needs the parameters resident (AdamW's state stays on
  // untouched zero pages); the first AdamW step needs parameters, gradients and both moments: 16 bytes a
  // parameter, over all processes.
  double memory_budget_gib = 20;
  int repeats = 3;
};

int run_bench_prepare(const BenchPrepareOptions& o);

// `fme bench floor`: seconds to first-touch `bytes` of fresh anonymous memory with `threads` threads, in
// this (new) process, as one JSON line. bench prepare runs it as a child so the floor and prepare both meet
// memory as a new process does.
// With fill, the same bytes are written as prepare's init writes them (fill_normal, fresh_memory) instead.
int run_bench_floor(size_t bytes, int threads, bool huge_pages, bool fill = false);

}  // namespace fme

// `fme bench prepare`: the seed's make_module_opt table — BERT presets with the seed's tensor-parallel plan
// and AdamW — at tp=1 and tp=2 (2 processes on this machine), each next to the floor this VM sets: the
// time to first-touch the same number of fresh bytes with 2 threads, measured in the same run, each in its
// own new process: one write a 4 KiB page (the floor), the same on huge pages, and MADV_POPULATE_WRITE
// a MiB at a time then one write a 4 KiB page (the cheapest fault path, the one prepare's fills take: the
// stricter floor; on a VM whose host backs a page only at the guest's first access it is that host's fault
// rate). Each row runs `repeats` rounds of (prepare, floors) back to back, so all see memory in the same
// state, and reports the best of each plus every sample: on a VM that hands freed memory back to the host, a
// round can fault in host memory too.
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
struct BenchFloorOptions {
  size_t bytes = size_t{1} << 30;
  int threads = 2;
  bool huge_pages = false;
  bool populate = false;  // take the faults with MADV_POPULATE_WRITE (TouchMethod::kPopulate), not one write a page
  bool fill = false;      // write the bytes as prepare's init does (fill_normal, fresh_memory) instead
};
int run_bench_floor(const BenchFloorOptions& o);

}  // namespace fme

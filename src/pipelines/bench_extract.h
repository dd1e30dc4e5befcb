// `fme bench extract`: the seed's extraction benchmark — Qwen2.5-0.5B shapes with random weights, batches of
// 4 x 512 tokens, layers 10-23 — run end to end through `fme extract`, next to (a) the same batches through
// the forward pass alone, (b) the machine's GEMM peak, and (c) a plain PyTorch eager Qwen2 forward
// (Debian's python3-torch), all measured in the same run.
#pragma once
#include <cstdint>
#include <string>

namespace fme {

struct BenchExtractOptions {
  std::string preset = "qwen2.5-0.5b";
  int64_t batch = 4, seq = 512, batches = 20;
  std::string layers = "10-23";
  std::string dtypes = "";     // comma list of auto|fp32|bf16; empty: auto,fp32 (+bf16 where the CPU has native bf16)
  std::string peer = "";       // path to torch_qwen2.py; empty: look beside the source tree (../shared/tools)
  std::string work_dir = "";   // scratch (default: a temp dir)
  int threads = 0;
};

// Prints one JSON line per dtype, then a summary of auto against the fastest explicit dtype; returns 0.
int run_bench_extract(const BenchExtractOptions& o);

}  // namespace fme

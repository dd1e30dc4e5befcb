// `fme bench extract`: the seed's extraction benchmark — by default Qwen2.5-0.5B shapes with random weights,
// batches of 4 x 512 tokens, layers 10-23; any decoder or GPT-2 preset — run end to end through `fme
// extract`, next to (a) the same batches through the forward pass alone, (b) the machine's GEMM peak, and
// (c) a plain PyTorch eager forward of the same math (bench/peers/torch_peer.py, Debian's python3-torch),
// all measured in the same run.
#pragma once
#include <cstdint>
#include <string>

namespace fme {

struct BenchExtractOptions {
  std::string preset = "qwen2.5-0.5b";
  int64_t batch = 4, seq = 512, batches = 20;
  std::string layers = "";     // empty: the last 14 blocks (10-23 of Qwen2.5-0.5B's 24, as the seed)
  std::string dtypes = "";     // comma list of auto|fp32|bf16; empty: auto,fp32 (+bf16 where the CPU has native bf16)
  std::string peer = "";       // the PyTorch eager peer; empty: bench/peers/torch_peer.py of the source tree
  std::string work_dir = "";   // scratch (default: a temp dir)
  int threads = 0;
};

// Prints one JSON line per dtype, then a summary of auto against the fastest explicit dtype; returns 0.
int run_bench_extract(const BenchExtractOptions& o);

}  // namespace fme

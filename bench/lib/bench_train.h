// `fme bench train`: the training step (forward, backward, optimizer) through `fme train`'s own loop, next to
// (a) ../shared/tools/torch_train.py --bench, plain PyTorch eager autograd with torch.optim.AdamW on the same
// shapes, and (b) 6 x parameters x tokens FLOPs over the GEMM peak, both measured in the same run (the best
// timed step against the best GEMM, the median step reported too), in each precision the CPU runs fast
// (fp32, and bf16-mixed against torch's bf16 autocast where bf16 is native).
// Defaults: bert-4l-768h masked LM on 8 x 128 and Qwen2.5-0.5B shapes next-token on 1 x 512.
// With fit_gib > 0: which of the seed table's BERT presets has an AdamW step (8 x 128, --precision auto) that
// fits in that much memory, from the peak RSS per parameter of a measured step of bert-12l-1024h, then checked
// by running the largest predicted fit (when the machine has the memory free).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fme {

struct BenchTrainOptions {
  std::vector<std::string> presets;  // empty: bert-4l-768h (8 x 128), qwen2.5-0.5b (1 x 512)
  int64_t batch = 0, seq = 0;        // 0: the preset's default above
  int64_t steps = 10;                // the first 3 are warm-up (first touches of memory, kernels); the rest timed
  std::string precisions;            // comma list of fp32, bf16-mixed; empty: fp32 (+ bf16-mixed on native bf16)
  std::string peer;                  // empty: torch_train.py of the shared tools
  std::string work_dir;
  int threads = 0;
  double fit_gib = 0;                // > 0: the memory-fit report above (and only it)
};

// One JSON line per (preset, precision); returns 0.
int run_bench_train(const BenchTrainOptions& o);

}  // namespace fme

// Training checkpoints: everything a run needs to continue after kill -9 as if it had never stopped.
//
//   RUN_DIR/checkpoints/step-00000012/
//     model.rank-00000.safetensors      this rank's parameters as they are (fp32 master weights, or a cast
//                                       plan's dtype), named as the module names them
//     optimizer.rank-00000.safetensors  its optimizer state (named_state(): moments, per-param step counts)
//     index.json                        written last: step, settings, mesh, data position, RNG, the metrics
//                                       bytes to keep, and every file's size and sha256
//
// Every file is written atomically (temp, fsync, rename) and index.json after all of them, so a checkpoint
// without its index is one a kill interrupted: it is ignored, and cleared when that step is written again.
// The optimizer's step count is the schedule's position; dropout masks come from the counter RNG of
// (seed, step, rank, micro-batch), so the seed is the whole RNG state.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/json.h"

namespace fme {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct TrainCheckpoint {
  std::string dir;  // RUN_DIR/checkpoints/step-N
  int64_t step = 0;
  uint64_t metrics_bytes = 0;  // metrics.jsonl's length when it was written (the lines of steps 1..step)
  Json index;
};

// Writes checkpoint `step` of the run in `run_dir` (rank 0 of a world of 1) and, with keep_last > 0, removes
// all but the newest keep_last checkpoints. `settings` are what a resume must match (see check_settings).
void save_train_checkpoint(const std::string& run_dir, int64_t step, uint64_t metrics_bytes, const Json& settings,
                           const Json& data_position, const NamedTensors& params, const NamedTensors& optimizer_state,
                           int64_t keep_last);

// The newest checkpoint whose index is present and whose files have the sizes and sha256 it records (a
// damaged newer one is skipped with a warning on stderr unless quiet); nullopt when there is none.
std::optional<TrainCheckpoint> find_latest_checkpoint(const std::string& run_dir, bool quiet);

// ConfigError listing every setting that differs ("--lr: checkpoint 0.01, now 0.001"), when any does.
void check_settings(const TrainCheckpoint& ckpt, const Json& settings);

// Copies the checkpoint's tensors into the live `params` and `optimizer_state` (same names, shapes and
// dtypes; FormatError naming the file and tensor otherwise).
void restore_train_checkpoint(const TrainCheckpoint& ckpt, const NamedTensors& params, const NamedTensors& optimizer_state);

}  // namespace fme

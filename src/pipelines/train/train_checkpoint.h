// Training checkpoints: everything a run needs to continue after kill -9 as if it had never stopped.
//
//   RUN_DIR/checkpoints/step-00000012/
//     model.rank-00000.safetensors      rank 0's parameters as they are (fp32 master weights, or a cast
//                                       plan's dtype; its shards under tensor parallelism), named as the
//                                       module names them
//     optimizer.rank-00000.safetensors  its optimizer state (named_state(): moments, per-param step counts)
//     model.rank-00001.safetensors ...  the same for every rank that holds a distinct part of the model: on a
//                                       dp x tp mesh the tp ranks of dp coordinate 0 (their dp peers hold
//                                       copies and read these files on --resume)
//     index.json                        written last: step, settings, mesh, data position, RNG, the metrics
//                                       bytes to keep, and every file's rank, size and sha256
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

// Writing a checkpoint takes three phases; between them every rank waits for the others (a barrier):
//   1. the lead clears what an interrupted write of this step left (begin_train_checkpoint);
//   2. every writing rank writes its two files (write_checkpoint_files);
//   3. the lead writes index.json over all writers' files, then, with keep_last > 0, removes all but the
//      newest keep_last checkpoints (commit_train_checkpoint). `settings` are what a resume must match
//      (see check_settings); `mesh` is recorded as given.
void begin_train_checkpoint(const std::string& run_dir, int64_t step);
void write_checkpoint_files(const std::string& run_dir, int64_t step, int rank, const NamedTensors& params,
                            const NamedTensors& optimizer_state);
void commit_train_checkpoint(const std::string& run_dir, int64_t step, uint64_t metrics_bytes, const Json& settings,
                             const Json& data_position, const Json& mesh, const std::vector<int>& writer_ranks,
                             int64_t keep_last);

// The newest checkpoint whose index is present and whose files have the sizes and sha256 it records (a
// damaged newer one is skipped with a warning on stderr unless quiet); nullopt when there is none.
std::optional<TrainCheckpoint> find_latest_checkpoint(const std::string& run_dir, bool quiet);

// ConfigError listing every setting that differs ("--lr: checkpoint 0.01, now 0.001"), when any does.
void check_settings(const TrainCheckpoint& ckpt, const Json& settings);

// Copies the tensors of rank `source_rank`'s files (this process's own, or its dp=0 peer's) into the live
// `params` and `optimizer_state` (same names, shapes and dtypes; FormatError naming the file and tensor
// otherwise, or when the checkpoint has no files of that rank).
void restore_train_checkpoint(const TrainCheckpoint& ckpt, int source_rank, const NamedTensors& params,
                              const NamedTensors& optimizer_state);

}  // namespace fme

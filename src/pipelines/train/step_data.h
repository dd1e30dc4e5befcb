// What each training step trains on: the micro-batches of one fixed batch (--inputs), the same at every step,
// or the next micro_batch x grad_accum rows of a streamed dataset (--dataset, packed_rows.h), epoch after
// epoch, with the objective's labels (train_batch.h). A stream's position is the rows it has handed out, so a
// resumed run reads the dataset again up to there (each document tokenized again: seconds per 100 MB of text).
// Data parallel (dp ranks): a step is world x micro x accum rows (of the fixed batch: all its rows), and rank r
// takes the r-th contiguous part, so dp=W with accum N sees exactly the micro-batches of dp=1 with accum W x N.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "pipelines/train/train_batch.h"
#include "util/json.h"

namespace fme {

class StepData {
 public:
  // One fixed batch, cut into `accum` micro-batches of `micro` rows.
  StepData(LabeledBatch batch, int64_t micro, int64_t accum, int rank = 0, int world = 1);
  // A stream of rows; `mlm` for the masked-LM objective.
  StepData(std::unique_ptr<PackedRows> rows, int64_t micro, int64_t accum, Objective objective, std::optional<MlmMasking> mlm,
           uint64_t seed, bool token_types, int rank = 0, int world = 1);
  ~StepData();

  // The micro-batches of step `step` (0-based; steps come in order).
  std::vector<LabeledBatch> next_step(int64_t step);
  // Passes over the rows of `steps` steps (a resume's fast-forward to its checkpoint).
  void skip_steps(int64_t steps);
  // Where the data stands, for a checkpoint's index.
  Json position() const;

 private:
  std::vector<PackedRow> next_rows(int64_t n);

  std::optional<LabeledBatch> fixed_;
  std::unique_ptr<PackedRows> rows_;
  int64_t micro_, accum_;
  Objective objective_ = Objective::Causal;
  std::optional<MlmMasking> mlm_;
  uint64_t seed_ = 0;
  bool token_types_ = false;
  int64_t rows_done_ = 0;  // of the whole world
  int rank_ = 0, world_ = 1;
};

// Rows of one epoch of `rows` (a counting pass: it reads the whole dataset once), then starts epoch 0 again.
int64_t rows_per_epoch(PackedRows& rows);

}  // namespace fme

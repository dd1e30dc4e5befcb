#include "pipelines/train/step_data.h"

#include "util/error.h"

namespace fme {

StepData::StepData(LabeledBatch batch, int64_t micro, int64_t accum, int rank, int world)
    : fixed_(batch.slice(batch.rows() / world * rank, batch.rows() / world)), micro_(micro), accum_(accum), rank_(rank), world_(world) {}

StepData::StepData(std::unique_ptr<PackedRows> rows, int64_t micro, int64_t accum, Objective objective,
                   std::optional<MlmMasking> mlm, uint64_t seed, bool token_types, int rank, int world)
    : rows_(std::move(rows)), micro_(micro), accum_(accum), objective_(objective), mlm_(std::move(mlm)), seed_(seed),
      token_types_(token_types), rank_(rank), world_(world) {}

StepData::~StepData() = default;

std::vector<PackedRow> StepData::next_rows(int64_t n) {
  std::vector<PackedRow> out(static_cast<size_t>(n));
  for (auto& r : out) {
    while (!rows_->next(r)) rows_->start_epoch(rows_->epoch() + 1);  // the next epoch, reshuffled
    ++rows_done_;
  }
  return out;
}

std::vector<LabeledBatch> StepData::next_step(int64_t step) {
  std::vector<LabeledBatch> out;
  if (fixed_) {
    for (int64_t m = 0; m < accum_; ++m) out.push_back(fixed_->slice(m * micro_, micro_));
    return out;
  }
  next_rows(rank_ * micro_ * accum_);  // the ranks before this one's
  for (int64_t m = 0; m < accum_; ++m)
    out.push_back(make_train_batch(next_rows(micro_), objective_, mlm_ ? &*mlm_ : nullptr, seed_, step, token_types_));
  next_rows((world_ - 1 - rank_) * micro_ * accum_);  // and after
  return out;
}

void StepData::skip_steps(int64_t steps) {
  if (rows_) next_rows(steps * world_ * micro_ * accum_);
}

Json StepData::position() const {
  if (fixed_) return Json{{"kind", "fixed_batch"}};
  return Json{{"kind", "stream"}, {"epoch", rows_->epoch()}, {"rows_done", rows_done_}};
}

int64_t rows_per_epoch(PackedRows& rows) {
  const int64_t epoch = rows.epoch();
  rows.start_epoch(epoch);
  PackedRow r;
  int64_t n = 0;
  while (rows.next(r)) ++n;
  rows.start_epoch(epoch);
  return n;
}

}  // namespace fme

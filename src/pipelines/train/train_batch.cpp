#include "pipelines/train/train_batch.h"

#include <ATen/ATen.h>

#include "util/error.h"
#include "util/splitmix64.h"

namespace fme {
namespace {

// A hash of the key gives independent uniform draws per token, with no state to carry across steps or a resume.
uint64_t mix(uint64_t z) { return splitmix64(z); }

// Draw `which` (0, 1, 2) for one token, uniform in [0, 1).
double draw(uint64_t key, int which) { return unit_interval(mix(key + 0x632be59bd9b4e019ull * static_cast<uint64_t>(which + 1))); }

}  // namespace

LabeledBatch make_train_batch(const std::vector<PackedRow>& rows, Objective objective, const MlmMasking* mlm, uint64_t seed,
                              int64_t step, bool token_types) {
  if (rows.empty()) throw ShapeError("make_train_batch: no rows");
  if (objective == Objective::MaskedLM && (!mlm || mlm->mask_id < 0)) throw ConfigError("masked-LM training needs a [MASK] token");
  const int64_t B = static_cast<int64_t>(rows.size()), T = static_cast<int64_t>(rows[0].ids.size());
  at::Tensor ids = at::empty({B, T}, at::kLong), mask = at::empty({B, T}, at::kLong), seg = at::empty({B, T}, at::kLong);
  at::Tensor pos = at::empty({B, T}, at::kLong), labels = at::full({B, T}, -100, at::kLong);
  auto I = ids.accessor<int64_t, 2>(), M = mask.accessor<int64_t, 2>(), S = seg.accessor<int64_t, 2>();
  auto P = pos.accessor<int64_t, 2>(), L = labels.accessor<int64_t, 2>();
  const uint64_t step_key = mix(mix(seed) ^ static_cast<uint64_t>(step));
  for (int64_t b = 0; b < B; ++b) {
    const PackedRow& r = rows[static_cast<size_t>(b)];
    if (static_cast<int64_t>(r.ids.size()) != T) throw ShapeError("make_train_batch: rows of different lengths");
    for (int64_t t = 0; t < T; ++t) {
      const size_t i = static_cast<size_t>(t);
      const int64_t id = r.ids[i];
      I[b][t] = id;
      S[b][t] = r.segment[i];
      M[b][t] = r.segment[i] > 0;
      P[b][t] = r.position[i];
      if (r.segment[i] == 0) continue;
      if (objective == Objective::Causal) {
        if (t > 0 && r.segment[i - 1] == r.segment[i]) L[b][t] = id;
        continue;
      }
      if (mlm->special.count(static_cast<int32_t>(id))) continue;
      const uint64_t key = mix(step_key ^ mix(static_cast<uint64_t>(r.document[i]) * 0x632be59bd9b4e019ull +
                                              static_cast<uint64_t>(r.offset[i])));
      if (draw(key, 0) >= mlm->probability) continue;
      L[b][t] = id;
      const double how = draw(key, 1);
      if (how < 0.8) I[b][t] = mlm->mask_id;
      else if (how < 0.9) I[b][t] = static_cast<int64_t>(draw(key, 2) * static_cast<double>(mlm->vocab_size));
    }
  }
  LabeledBatch out;
  out.batch.input_ids = ids;
  out.batch.attention_mask = mask;
  if (token_types) out.batch.token_type_ids = at::zeros({B, T}, at::kLong);
  out.batch.segment_ids = seg;
  out.batch.position_ids = pos;
  out.labels = labels;
  return out;
}

}  // namespace fme

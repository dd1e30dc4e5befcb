#include "models/padded_batch.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace fme {

Batch right_padded_batch(const std::vector<const std::vector<int32_t>*>& rows) {
  const int64_t B = static_cast<int64_t>(rows.size());
  int64_t T = 0;
  for (const auto* r : rows) T = std::max<int64_t>(T, static_cast<int64_t>(r->size()));
  Batch batch{at::zeros({B, T}, at::kLong), at::zeros({B, T}, at::kLong), {}};
  auto ids = batch.input_ids.accessor<int64_t, 2>();
  auto mask = batch.attention_mask.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t < rows[b]->size(); ++t) {
      ids[b][t] = (*rows[b])[t];
      mask[b][t] = 1;
    }
  return batch;
}

}  // namespace fme

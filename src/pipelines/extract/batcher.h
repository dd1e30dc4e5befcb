// Length bucketing: the samples of one window are sorted by length and cut into batches under a token
// budget (padded B x T) or a fixed count, so padding stays small. The plan depends only on the window's
// lengths, never on timing, so a resumed run forms exactly the same batches.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fme {

// Returns batches as lists of positions into `lengths` (each batch sorted by length, then position).
// batch_size > 0: at most that many per batch; else at most batch_tokens padded tokens per batch
// (a single sample longer than the budget gets a batch of its own).
std::vector<std::vector<size_t>> plan_batches(const std::vector<int64_t>& lengths, int64_t batch_tokens,
                                              int64_t batch_size);

}  // namespace fme

#include "pipelines/extract/batcher.h"

#include <algorithm>
#include <numeric>

namespace fme {

std::vector<std::vector<size_t>> plan_batches(const std::vector<int64_t>& lengths, int64_t batch_tokens,
                                              int64_t batch_size) {
  std::vector<size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lengths[a] < lengths[b]; });
  std::vector<std::vector<size_t>> batches;
  std::vector<size_t> cur;
  int64_t longest = 0;
  for (size_t i : order) {
    const int64_t len = lengths[i];
    const int64_t n = static_cast<int64_t>(cur.size()) + 1;
    const bool fits = batch_size > 0 ? n <= batch_size : n * std::max(longest, len) <= batch_tokens;
    if (!cur.empty() && !fits) {
      batches.push_back(std::move(cur));
      cur.clear();
      longest = 0;
    }
    cur.push_back(i);
    longest = std::max(longest, len);
  }
  if (!cur.empty()) batches.push_back(std::move(cur));
  return batches;
}

}  // namespace fme

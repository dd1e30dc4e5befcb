// Length bucketing: every sample lands in exactly one batch, batches respect the budget, padding is small.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "pipelines/extract/batcher.h"

namespace fme {
namespace {

TEST(Batcher, EverySampleOnceAndWithinTheTokenBudget) {
  std::mt19937 rng(7);
  std::vector<int64_t> len(300);
  for (auto& l : len) l = 1 + rng() % 3000;
  len[17] = 20000;  // longer than the budget: a batch of its own
  auto batches = plan_batches(len, 8192, 0);
  std::set<size_t> seen;
  int64_t padded = 0, real = 0;
  for (const auto& b : batches) {
    int64_t longest = 0;
    for (size_t i : b) {
      EXPECT_TRUE(seen.insert(i).second) << "sample " << i << " in two batches";
      longest = std::max(longest, len[i]);
      real += len[i];
    }
    if (b.size() > 1) {
      EXPECT_LE(static_cast<int64_t>(b.size()) * longest, 8192);
    }
    padded += static_cast<int64_t>(b.size()) * longest;
  }
  EXPECT_EQ(seen.size(), len.size());
  EXPECT_LT(double(padded - real) / real, 0.05) << "length bucketing should keep padding small";
}

TEST(Batcher, FixedBatchSize) {
  std::vector<int64_t> len{5, 1, 4, 2, 3};
  auto batches = plan_batches(len, 1, 2);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0], (std::vector<size_t>{1, 3}));  // lengths 1, 2
  EXPECT_EQ(batches[1], (std::vector<size_t>{4, 2}));  // lengths 3, 4
  EXPECT_EQ(batches[2], (std::vector<size_t>{0}));
}

}  // namespace
}  // namespace fme

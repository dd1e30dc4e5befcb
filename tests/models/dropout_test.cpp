// Dropout: the identity outside a DropoutScope; inside one, torch's inverted dropout with masks that depend
// only on (seed, step, rank, micro-batch) and the call's place in the pass.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "models/dropout.h"

namespace fme {
namespace {

TEST(Dropout, IsTheIdentityOutsideAScopeAndAtZero) {
  const at::Tensor x = at::randn({64, 64});
  EXPECT_TRUE(dropout(x, 0.3).is_same(x));
  DropoutScope scope(1, 0, 0, 0);
  EXPECT_TRUE(dropout(x, 0.0).is_same(x));
}

TEST(Dropout, ZeroesAboutPAndScalesTheRest) {
  const at::Tensor x = at::rand({1 << 20}) + 1.0;  // no zeros of its own
  const double p = 0.1;
  DropoutScope scope(3, 5, 0, 0);
  const at::Tensor y = dropout(x, p);
  const at::Tensor zero = y.eq(0);
  const double frac = zero.to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(frac, p, 0.002);  // 1M Bernoulli draws: sd 3e-4
  const at::Tensor kept = zero.logical_not();
  EXPECT_LE((y.masked_select(kept) - x.masked_select(kept) / (1 - p)).abs().max().item<double>(), 1e-6);
}

TEST(Dropout, MasksFollowTheScopeKeyAndTheCallOrder) {
  const at::Tensor x = at::ones({4096});
  auto masks = [&](uint64_t seed, int64_t step, int64_t rank, int64_t micro) {
    DropoutScope scope(seed, step, rank, micro);
    at::Tensor a = dropout(x, 0.5), b = dropout(x, 0.5);
    return std::make_pair(a, b);
  };
  const auto ref = masks(1, 2, 0, 0);
  EXPECT_TRUE(at::equal(ref.first, masks(1, 2, 0, 0).first));  // reproducible
  EXPECT_FALSE(at::equal(ref.first, ref.second));                // each call its own mask
  EXPECT_FALSE(at::equal(ref.first, masks(1, 3, 0, 0).first));   // step
  EXPECT_FALSE(at::equal(ref.first, masks(1, 2, 1, 0).first));   // rank
  EXPECT_FALSE(at::equal(ref.first, masks(1, 2, 0, 1).first));   // micro-batch
  EXPECT_FALSE(at::equal(ref.first, masks(2, 2, 0, 0).first));   // seed
}

TEST(Dropout, GradientIsTheScaledMask) {
  at::Tensor x = at::randn({1000}).set_requires_grad(true);
  DropoutScope scope(9, 0, 0, 0);
  at::Tensor y = dropout(x, 0.25);
  y.sum().backward();
  const at::Tensor expected = y.detach().ne(0).to(at::kFloat) / 0.75;
  EXPECT_LE((x.grad() - expected).abs().max().item<double>(), 1e-6);
}

}  // namespace
}  // namespace fme

// The fused bf16 training RoPE: its forward bit for bit the composite of ATen ops it replaces, its gradient
// against fp64 autograd of the same rotation on the same bf16 values, for both table layouts (one position
// per column, and per-row positions of packed documents).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "models/layers.h"
#include "models/rope_fused.h"

namespace fme {
namespace {

at::Tensor composite(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {  // layers.cpp's ops
  const int64_t half = x.size(-1) / 2;
  return x * cos + at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1) * sin;
}

struct Tables {
  at::Tensor cos, sin;
};

// [T, hd] tables, or [B, 1, T, hd] gathered at per-row positions (as packed rows restart them).
Tables tables(int64_t B, int64_t T, int64_t hd, bool per_row) {
  auto [cos, sin] = rope_tables(T, hd, 10000.0, at::kBFloat16);
  if (!per_row) return {cos, sin};
  const at::Tensor pos = at::randint(0, T, {B * T}, at::TensorOptions().dtype(at::kLong));
  return {cos.index_select(0, pos).view({B, 1, T, hd}), sin.index_select(0, pos).view({B, 1, T, hd})};
}

TEST(RopeFused, ForwardIsTheCompositeBitForBitAndTheGradientMatchesFp64) {
  at::manual_seed(5);
  for (const bool per_row : {false, true})
    for (const auto& [B, n, T, hd] : std::vector<std::array<int64_t, 4>>{{2, 3, 37, 16}, {1, 14, 64, 64}, {3, 2, 5, 2}}) {
      const Tables tb = tables(B, T, hd, per_row);
      const at::Tensor proj = (at::randn({B, T, n, hd}) * 2).to(at::kBFloat16);  // a projection's output
      const at::Tensor dy = at::randn({B, n, T, hd}).to(at::kBFloat16);
      at::Tensor leaf = proj.clone().set_requires_grad(true);
      const at::Tensor x = (leaf * 1).transpose(1, 2);  // [B, n, T, hd], heads-first view
      ASSERT_TRUE(rope_fusable(x, tb.cos, tb.sin));
      const at::Tensor y = apply_rope(x, tb.cos, tb.sin);
      EXPECT_TRUE(y.is_contiguous());
      EXPECT_TRUE(at::equal(y.detach(), composite(proj.transpose(1, 2), tb.cos, tb.sin))) << "n=" << n << " T=" << T << " hd=" << hd;
      y.backward(dy);
      at::Tensor xd = proj.to(at::kDouble).set_requires_grad(true);
      composite(xd.transpose(1, 2), tb.cos.to(at::kDouble), tb.sin.to(at::kDouble)).backward(dy.to(at::kDouble));
      // One rounding of the exact value, plus fp32's error on the two products' magnitudes: |dy| |c| + |dy'| |s'|
      // per element, the same backward over absolute values.
      const at::Tensor ref = xd.grad();
      at::Tensor m = proj.to(at::kDouble).abs().set_requires_grad(true);
      composite(m.transpose(1, 2), tb.cos.to(at::kDouble).abs(), tb.sin.to(at::kDouble).abs()).backward(dy.to(at::kDouble).abs());
      const at::Tensor mag = m.grad().abs();
      const at::Tensor err = (leaf.grad().to(at::kDouble) - ref).abs();
      const at::Tensor bound = ref.abs() / 256 + mag * 1e-6;
      EXPECT_TRUE((err <= bound).all().item<bool>()) << "per_row=" << per_row << " n=" << n << ": worst excess "
                                                    << (err - bound).max().item<double>();
    }
}

TEST(RopeFused, AppliesOnlyToHeadsFirstViewsOfBf16TrainingProjections) {
  auto [cos, sin] = rope_tables(8, 4, 10000.0, at::kBFloat16);
  const at::Tensor proj = at::randn({1, 8, 2, 4}).to(at::kBFloat16).set_requires_grad(true);
  EXPECT_TRUE(rope_fusable(proj.transpose(1, 2), cos, sin));
  EXPECT_FALSE(rope_fusable(proj.detach().transpose(1, 2), cos, sin));                      // inference
  EXPECT_FALSE(rope_fusable(proj.transpose(1, 2).contiguous(), cos, sin));                  // not a heads-first view
  EXPECT_FALSE(rope_fusable(proj.to(at::kFloat).transpose(1, 2), cos.to(at::kFloat), sin.to(at::kFloat)));  // fp32
  EXPECT_FALSE(rope_fusable(proj.transpose(1, 2), cos.narrow(0, 0, 4), sin.narrow(0, 0, 4)));  // tables for T=4
  // Outside the fused path apply_rope is the composite.
  const at::Tensor x = proj.detach().to(at::kFloat).transpose(1, 2);
  EXPECT_TRUE(at::equal(apply_rope(x, cos.to(at::kFloat), sin.to(at::kFloat)), composite(x, cos.to(at::kFloat), sin.to(at::kFloat))));
}

}  // namespace
}  // namespace fme

// The fused bf16 training RMSNorm against the same function in fp64 autograd (ATen's, on the same bf16 inputs),
// and against the composite of ATen ops it replaces, at sizes with ragged lanes and row blocks.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "models/rms_norm_fused.h"

namespace fme {
namespace {

constexpr double kEps = 1e-6;
constexpr double kBf16 = 1.0 / 256;  // one bf16 rounding, relative (2^-8: an upper bound for round-to-nearest)

at::Tensor reference(const at::Tensor& x, const at::Tensor& w) {  // fp64, no rounding anywhere
  return w * (x * at::rsqrt(x.pow(2).mean(-1, true) + kEps));
}

struct Case {
  at::Tensor x, w, dy;  // bf16
};

Case make_case(std::vector<int64_t> shape, uint64_t seed) {
  at::manual_seed(seed);
  Case c;
  c.x = (at::randn(shape) * 3).to(at::kBFloat16);
  c.w = (at::rand({shape.back()}) + 0.5).to(at::kBFloat16);
  c.dy = at::randn(shape).to(at::kBFloat16);
  return c;
}

struct Result {
  at::Tensor y, dx, dw;
};

Result fused(const Case& c) {
  at::Tensor x = c.x.clone().set_requires_grad(true), w = c.w.clone().set_requires_grad(true);
  EXPECT_TRUE(rms_norm_fusable(x, w));
  at::Tensor y = rms_norm_fused(x, w, kEps);
  y.backward(c.dy);
  return {y.detach(), x.grad(), w.grad()};
}

TEST(RmsNormFused, ForwardAndGradientsAgainstFp64Autograd) {
  for (const auto& shape : std::vector<std::vector<int64_t>>{{37, 50}, {2, 33, 896}, {1, 16}, {70, 1}}) {
    const Case c = make_case(shape, 7);
    const Result r = fused(c);
    at::Tensor x = c.x.to(at::kDouble).set_requires_grad(true), w = c.w.to(at::kDouble).set_requires_grad(true);
    const at::Tensor y = reference(x, w);
    y.backward(c.dy.to(at::kDouble));
    const int64_t d = shape.back();
    // Forward: two bf16 roundings (the normalized value, then the product with w), as HF's composite.
    EXPECT_TRUE(((r.y.to(at::kDouble) - y.detach()).abs() <= y.detach().abs() * (2.05 * kBf16)).all().item<bool>());
    // dx: fp32 throughout and rounded once; fp32's errors bounded by the terms' magnitudes,
    // inv * (|g| + sum|g x| inv^2 |x| / D) with g = dy * w.
    const at::Tensor xd = c.x.to(at::kDouble), g = c.dy.to(at::kDouble) * c.w.to(at::kDouble);
    const at::Tensor inv = at::rsqrt(xd.pow(2).mean(-1, true) + kEps);
    const at::Tensor scale = inv * (g.abs() + (g * xd).abs().sum(-1, true) * inv.pow(2) * xd.abs() / double(d));
    const at::Tensor dx_err = (r.dx.to(at::kDouble) - x.grad()).abs();
    const at::Tensor dx_bound = x.grad().abs() * kBf16 + scale * 1e-6;
    EXPECT_TRUE((dx_err <= dx_bound).all().item<bool>())
        << "dx, shape [..," << d << "]: worst excess " << (dx_err - dx_bound).max().item<double>();
    // dw: the normalized values rounded to bf16 (as the forward used them), summed in fp32, rounded once.
    const at::Tensor n_abs = (xd * inv).abs();
    const at::Tensor terms = (c.dy.to(at::kDouble).abs() * n_abs).reshape({-1, d}).sum(0);
    const at::Tensor dw_err = (r.dw.to(at::kDouble) - w.grad()).abs();
    const at::Tensor dw_bound = w.grad().abs() * kBf16 + terms * (kBf16 / 2 + 1e-5);
    EXPECT_TRUE((dw_err <= dw_bound).all().item<bool>())
        << "dw, shape [..," << d << "]: worst excess " << (dw_err - dw_bound).max().item<double>();
    EXPECT_EQ(r.dx.scalar_type(), at::kBFloat16);
    EXPECT_EQ(r.dw.scalar_type(), at::kBFloat16);
  }
}

// The composite it replaces (layers.cpp's path for every other case), on the same bf16 inputs: the forward
// agrees to one bf16 step (the row's sum of squares is added in another order), the gradients to the
// composite's own extra roundings.
TEST(RmsNormFused, AgreesWithTheCompositeOfATenOps) {
  const Case c = make_case({64, 896}, 3);
  const Result r = fused(c);
  at::Tensor x = c.x.clone().set_requires_grad(true), w = c.w.clone().set_requires_grad(true);
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor y = w * (xf * at::rsqrt(xf.pow(2).mean(-1, true).add_(kEps))).to(at::kBFloat16);
  y.backward(c.dy);
  const auto ulps = [](const at::Tensor& a, const at::Tensor& b) {  // bf16 steps apart, relative to |b|
    return ((a.to(at::kDouble) - b.to(at::kDouble)).abs() / (b.to(at::kDouble).abs() * kBf16 + 1e-30)).max().item<double>();
  };
  EXPECT_LE(ulps(r.y, y.detach()), 1.01);
  EXPECT_GT((r.y == y.detach()).to(at::kDouble).mean().item<double>(), 0.99);  // nearly all bit-identical
  const double scale_dx = x.grad().abs().max().item<double>(), scale_dw = w.grad().abs().max().item<double>();
  EXPECT_LE((r.dx.to(at::kDouble) - x.grad().to(at::kDouble)).abs().max().item<double>(), scale_dx * 4 * kBf16);
  EXPECT_LE((r.dw.to(at::kDouble) - w.grad().to(at::kDouble)).abs().max().item<double>(), scale_dw * 4 * kBf16);
}

TEST(RmsNormFused, SameBitsAtAnyThreadCount) {
  const Case c = make_case({200, 72}, 11);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const Result one = fused(c);
  at::set_num_threads(std::max(2, threads));
  const Result many = fused(c);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one.y, many.y));
  EXPECT_TRUE(at::equal(one.dx, many.dx));
  EXPECT_TRUE(at::equal(one.dw, many.dw));
}

TEST(RmsNormFused, AppliesOnlyToContiguousBf16CpuTrainingInputs) {
  const at::Tensor w = at::ones({8}).to(at::kBFloat16);
  const at::Tensor x = at::randn({4, 8}).to(at::kBFloat16);
  EXPECT_FALSE(rms_norm_fusable(x, w));                                     // no grad: inference takes ATen's ops
  EXPECT_FALSE(rms_norm_fusable(at::randn({4, 8}).set_requires_grad(true), w));  // fp32
  EXPECT_FALSE(rms_norm_fusable(at::randn({8, 4}).to(at::kBFloat16).t().set_requires_grad(true), w));  // strided
  EXPECT_FALSE(rms_norm_fusable(x.clone().set_requires_grad(true), at::ones({8})));                      // fp32 w
  EXPECT_FALSE(rms_norm_fusable(x.clone().set_requires_grad(true), at::ones({7}).to(at::kBFloat16)));    // wrong width
  EXPECT_TRUE(rms_norm_fusable(x.clone().set_requires_grad(true), w));
}

}  // namespace
}  // namespace fme

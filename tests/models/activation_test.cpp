// The fused activations against ATen's own silu and tanh-gelu evaluated in fp64, over the range where they
// bend (and far beyond, where they saturate), at sizes that leave tails in every chunk and thread split.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "models/activation.h"

namespace fme {
namespace {

at::Tensor grid(int64_t n) { return at::linspace(-30.0, 30.0, n, at::TensorOptions().dtype(at::kFloat)); }

at::Tensor reference(const at::Tensor& x, bool gelu) {
  const at::Tensor d = x.to(at::kDouble);
  return gelu ? at::gelu(d, "tanh") : at::silu(d);
}

void expect_close_fp32(bool gelu, int64_t n) {
  at::Tensor x = grid(n);
  at::Tensor y = x.clone();
  gelu ? gelu_tanh_in_place(y) : silu_in_place(y);
  const at::Tensor err = (y.to(at::kDouble) - reference(x, gelu)).abs();
  const at::Tensor bound = x.to(at::kDouble).abs() * 2e-6 + 1e-30;  // a few fp32 ulps of |x| >= |y|
  EXPECT_TRUE(err.le(bound).all().item<bool>())
      << (gelu ? "gelu" : "silu") << " n=" << n << " max err " << err.max().item<double>();
}

void expect_close_bf16(bool gelu, int64_t n) {
  at::Tensor x = grid(n).to(at::kBFloat16);
  at::Tensor y = x.clone();
  gelu ? gelu_tanh_in_place(y) : silu_in_place(y);
  const at::Tensor ref = reference(x, gelu);
  // At most one bf16 rounding step (2^-8 relative) away from the exact value; where that value is below
  // 1e-12 (gelu far left of 0, which tanh's rounding makes exactly 0 in ATen) the two agree to 1e-12.
  const at::Tensor over = (y.to(at::kDouble) - ref).abs() / (ref.abs() * (1.0 / 256) + 1e-12);
  const int64_t worst = over.argmax().item<int64_t>();
  EXPECT_LE(over[worst].item<double>(), 1.0)
      << (gelu ? "gelu" : "silu") << " bf16 n=" << n << " at x=" << x[worst].item<float>() << ": got "
      << y[worst].item<float>() << ", want " << ref[worst].item<double>();
}

TEST(Activation, Fp32MatchesATenInFp64) {
  for (int64_t n : {1, 17, 513, 100003})
    for (bool gelu : {false, true}) expect_close_fp32(gelu, n);
}

TEST(Activation, Bf16IsWithinOneRoundingOfTheExactValue) {
  for (int64_t n : {1, 17, 513, 100003})
    for (bool gelu : {false, true}) expect_close_bf16(gelu, n);
}

// Training in bf16 (an input that requires grad): the forward as above, and a gradient within one bf16
// rounding of ATen's fp64 autograd of the same activation at the same (bf16) points.
TEST(Activation, Bf16TrainingGradientIsWithinOneRoundingOfTheExactOne) {
  for (int64_t n : {17, 100003})
    for (bool gelu : {false, true}) {
      const at::Tensor x0 = grid(n).to(at::kBFloat16);
      const at::Tensor g = (at::rand({n}) + 0.5).to(at::kBFloat16);  // the gradient arriving from above
      at::Tensor x = x0.clone().set_requires_grad(true);
      at::Tensor y = x * 1;  // an op's output, as in a model (in place on a leaf is not allowed)
      gelu ? gelu_tanh_in_place(y) : silu_in_place(y);
      y.backward(g);
      at::Tensor xd = x0.to(at::kDouble).set_requires_grad(true);
      reference(xd, gelu).backward(g.to(at::kDouble));
      const at::Tensor ref = xd.grad();
      const at::Tensor over = (x.grad().to(at::kDouble) - ref).abs() / (ref.abs() * (1.0 / 256) + 1e-6);
      const int64_t worst = over.argmax().item<int64_t>();
      EXPECT_LE(over[worst].item<double>(), 1.0) << (gelu ? "gelu" : "silu") << " n=" << n << " at x=" << x0[worst].item<float>()
                                                 << ": got " << x.grad()[worst].item<float>() << ", want " << ref[worst].item<double>();
      const at::Tensor fwd = reference(x0, gelu);
      EXPECT_LE(((y.detach().to(at::kDouble) - fwd).abs() / (fwd.abs() * (1.0 / 256) + 1e-12)).max().item<double>(), 1.0);
    }
}

TEST(Activation, NonFiniteInputsAndStridedViews) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    at::Tensor x = at::tensor({inf, nan, 0.0f, -0.0f}).to(dtype);
    silu_in_place(x);
    EXPECT_TRUE(std::isinf(x[0].item<float>()) && x[0].item<float>() > 0);
    EXPECT_TRUE(std::isnan(x[1].item<float>()));
    EXPECT_EQ(x[2].item<float>(), 0.0f);
  }
  // A transposed view is not contiguous: ATen's op runs, and the result equals it.
  at::Tensor base = at::randn({64, 48});
  at::Tensor view = base.t();
  at::Tensor want = at::gelu(view, "tanh");
  gelu_tanh_in_place(view);
  EXPECT_TRUE(at::allclose(view, want, 0, 0));
}

}  // namespace
}  // namespace fme

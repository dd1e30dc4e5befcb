// The LM head's sliced bf16 backward (models/vocab_projection.h) against fp64 autograd through at::linear on
// the same bf16 values, with a vocabulary that leaves a short last slice, with and without a bias, and with
// only some inputs requiring a gradient.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>

#include "models/vocab_projection.h"

namespace fme {
namespace {

// |got - want| over want's scale: the worst element, relative to the largest.
double error(const at::Tensor& got, const at::Tensor& want) {
  return ((got.to(at::kDouble) - want).abs().max() / want.abs().max()).item<double>();
}

// Each gradient within two bf16 roundings (2^-8 of the largest) plus twice ATen's own bf16 linear's error
// on the same values: ATen 1.13 computes bf16 GEMMs with oneDNN where the CPU has AVX-512 (fp32 sums,
// rounded once) and otherwise with a kernel that sums in bf16 (errors of a few percent over 3000 terms).
// Both are checked here, oneDNN switched off for the second.
TEST(VocabProjection, SlicedBf16BackwardMatchesFp64) {
  at::manual_seed(3);
  const int64_t B = 2, T = 32, H = 64, V = 300, slice = 64;  // four slices and a last one of 44 rows
  const at::Tensor h0 = at::randn({B, T, H}).to(at::kBFloat16), w0 = at::randn({V, H}).to(at::kBFloat16),
                   b0 = at::randn({V}).to(at::kBFloat16), up = at::randn({B, T, V}).to(at::kBFloat16);
  const bool onednn = at::globalContext().userEnabledMkldnn();
  for (const bool use_onednn : {true, false}) {
    at::globalContext().setUserEnabledMkldnn(use_onednn);
    for (const bool with_bias : {true, false}) {
      for (const bool h_grad : {true, false}) {
        const std::string where = std::string(use_onednn ? "oneDNN" : "ATen's kernel") + (with_bias ? ", bias" : ", no bias") +
                                  (h_grad ? ", h grad" : ", no h grad");
        at::Tensor h = h0.clone().set_requires_grad(h_grad), w = w0.clone().set_requires_grad(true),
                   b = with_bias ? b0.clone().set_requires_grad(true) : at::Tensor();
        const at::Tensor y = vocab_logits(h, w, b, slice);
        ASSERT_EQ(y.sizes(), (at::IntArrayRef{B, T, V}));
        ASSERT_EQ(y.scalar_type(), at::kBFloat16);
        y.backward(up);
        EXPECT_EQ(w.grad().scalar_type(), at::kBFloat16);

        at::Tensor ha = h0.clone().set_requires_grad(true), wa = w0.clone().set_requires_grad(true);  // ATen, whole
        at::linear(ha, wa).backward(up);
        at::Tensor hd = h0.to(at::kDouble).set_requires_grad(true), wd = w0.to(at::kDouble).set_requires_grad(true),
                   bd = with_bias ? b0.to(at::kDouble).set_requires_grad(true) : at::Tensor();
        const at::Tensor yd = at::linear(hd, wd, bd);
        yd.backward(up.to(at::kDouble));

        EXPECT_LE(error(y.detach(), yd.detach()), 1.0 / 128 + 2 * error(at::linear(h0, w0, with_bias ? b0 : at::Tensor()), yd.detach())) << where;
        EXPECT_LE(error(w.grad(), wd.grad()), 1.0 / 256 + 2 * error(wa.grad(), wd.grad())) << where;
        if (h_grad) {
          EXPECT_LE(error(h.grad(), hd.grad()), 1.0 / 256 + 2 * error(ha.grad(), hd.grad())) << where;
        } else {
          EXPECT_FALSE(h.grad().defined()) << where;
        }
        if (with_bias) {
          EXPECT_LE(error(b.grad(), bd.grad()), 1.0 / 128) << where;
        } else {
          EXPECT_NE(y.grad_fn()->name().find("VocabLogitsFn"), std::string::npos) << "the sliced backward ran";
        }
      }
    }
  }
  at::globalContext().setUserEnabledMkldnn(onednn);
}

TEST(VocabProjection, WholeWhereSlicesDoNotApply) {
  const at::Tensor h = at::randn({3, 8}).set_requires_grad(true), w = at::randn({50, 8}).set_requires_grad(true);
  const at::Tensor y = vocab_logits(h, w, {}, 16);  // fp32: at::linear's own backward
  EXPECT_EQ(y.grad_fn()->name().find("VocabLogitsFn"), std::string::npos);
  EXPECT_TRUE(at::allclose(y, at::linear(h, w)));
  const at::Tensor small = vocab_logits(h.to(at::kBFloat16), w.to(at::kBFloat16), {}, 64);  // one slice: whole
  EXPECT_EQ(small.grad_fn()->name().find("VocabLogitsFn"), std::string::npos);
}

}  // namespace
}  // namespace fme

// Blocked attention (queries in blocks sized by a score budget) against one unblocked pass and against a
// plain reference written with full [T, T] scores: causal and bidirectional, grouped-query heads, padding,
// Gemma 2's soft cap and sliding window. The HF goldens have T = 13, below the smallest query block (16), so
// this is where blocking itself is checked.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "models/layers.h"

namespace fme {
namespace {

// softmax(mask(cap(q k^T * scale))) v with every score at once; q [B,nh,T,hd], k, v [B,nkv,T,hd] -> [B,T,nh*hd].
at::Tensor reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                     const AttentionOptions& o) {
  const int64_t B = q.size(0), nh = q.size(1), T = q.size(2), hd = q.size(3), g = nh / k.size(1);
  at::Tensor kk = k.repeat_interleave(g, 1), vv = v.repeat_interleave(g, 1);      // [B,nh,T,hd]
  at::Tensor s = at::matmul(q, kk.transpose(-1, -2)) * (o.scale > 0 ? o.scale : 1.0 / std::sqrt(double(hd)));
  if (o.softcap > 0) s = at::tanh(s / o.softcap) * o.softcap;
  at::Tensor qi = at::arange(T, at::kLong).view({T, 1}), ki = at::arange(T, at::kLong).view({1, T});
  at::Tensor allowed = key_mask.to(at::kBool).view({B, 1, 1, T}).expand({B, nh, T, T});
  if (o.causal) allowed = allowed.logical_and(ki.le(qi));
  if (o.window > 0) allowed = allowed.logical_and(ki.gt(qi - o.window));
  s = s.masked_fill(allowed.logical_not(), -1e30);
  return at::matmul(at::softmax(s, -1), vv).permute({0, 2, 1, 3}).reshape({B, T, nh * hd});
}

TEST(Attention, BlockedEqualsUnblockedAndTheReference) {
  at::manual_seed(7);
  const int64_t B = 3, nh = 4, nkv = 2, T = 150, hd = 8;
  at::Tensor q = at::randn({B, nh, T, hd}), k = at::randn({B, nkv, T, hd}), v = at::randn({B, nkv, T, hd});
  at::Tensor mask = at::ones({B, T}, at::kLong);
  mask[1].narrow(0, 97, T - 97).zero_();  // right padding
  mask[2].narrow(0, 20, T - 20).zero_();
  at::Tensor real = mask.to(at::kBool).unsqueeze(-1);  // rows compared: real tokens only
  for (bool causal : {true, false}) {
    for (int64_t window : {int64_t{0}, int64_t{5}, int64_t{40}}) {
      if (!causal && window) continue;
      for (double softcap : {0.0, 2.0}) {
        AttentionOptions o;
        o.causal = causal;
        o.window = window;
        o.softcap = softcap;
        o.scale = softcap > 0 ? 1.0 / std::sqrt(12.0) : 0;
        o.score_budget_bytes = int64_t{1} << 40;  // one block of all queries
        at::Tensor whole = attention(q, k, v, mask, o);
        o.score_budget_bytes = 1;  // the smallest blocks: 16 queries
        at::Tensor blocked = attention(q, k, v, mask, o);
        at::Tensor ref = reference(q, k, v, mask, o);
        const std::string what = std::string(causal ? "causal" : "bidirectional") + " window " +
                                 std::to_string(window) + " softcap " + std::to_string(softcap);
        EXPECT_LE((blocked - whole).abs().masked_select(real.expand_as(whole)).max().item<double>(), 1e-6) << what;
        EXPECT_LE((blocked - ref).abs().masked_select(real.expand_as(ref)).max().item<double>(), 1e-5) << what;
      }
    }
  }
}

// bf16 training (inputs that require grad) takes the fused masked softmax (models/masked_softmax.h): the
// output of the fill-and-softmax path within bf16 rounding, and q, k, v gradients against fp64 autograd, with
// left padding (queries that see no key), right padding, packed segments and blocks of 16 queries.
TEST(Attention, Bf16TrainingMatchesFp64Autograd) {
  at::manual_seed(8);
  const int64_t B = 3, nh = 4, nkv = 2, T = 70, hd = 16;
  const at::Tensor q0 = at::randn({B, nh, T, hd}), k0 = at::randn({B, nkv, T, hd}), v0 = at::randn({B, nkv, T, hd});
  at::Tensor mask = at::ones({B, T}, at::kLong);
  mask[1].narrow(0, 0, 9).zero_();     // left padding: queries 0..8 see no key
  mask[2].narrow(0, 50, T - 50).zero_();  // right padding
  at::Tensor segments = mask.clone();   // packed: row 0 holds three documents
  segments[0].narrow(0, 25, 20).fill_(2);
  segments[0].narrow(0, 45, T - 45).fill_(3);
  const at::Tensor real = mask.to(at::kBool).view({B, T, 1});
  const at::Tensor upstream = at::randn({B, T, nh * hd}) * real;  // padded queries get no gradient (as in a model)
  for (const at::Tensor& key_mask : {mask, segments}) {
    const bool packed = key_mask.equal(segments);
    AttentionOptions o;
    o.causal = true;
    o.score_budget_bytes = 1;  // 16-query blocks
    at::Tensor q = q0.to(at::kBFloat16).set_requires_grad(true), k = k0.to(at::kBFloat16).set_requires_grad(true),
               v = v0.to(at::kBFloat16).set_requires_grad(true);
    const at::Tensor out = attention(q, k, v, key_mask, o);
    out.backward(upstream.to(at::kBFloat16));
    const at::Tensor plain = attention(q.detach(), k.detach(), v.detach(), key_mask, o);  // the fill and softmax
    EXPECT_LE((out.detach().to(at::kFloat) - plain.to(at::kFloat)).abs().masked_select(real.expand_as(out)).max().item<float>(), 0.02f);

    // fp64 on the same bf16 values, the segments as a mask of their own.
    at::Tensor qd = q.detach().to(at::kDouble).set_requires_grad(true), kd = k.detach().to(at::kDouble).set_requires_grad(true),
               vd = v.detach().to(at::kDouble).set_requires_grad(true);
    at::Tensor ref;
    if (!packed) {
      ref = reference(qd, kd, vd, key_mask, o);
    } else {
      const at::Tensor same = key_mask.view({B, 1, T, 1}).eq(key_mask.view({B, 1, 1, T}));  // [B,1,T,T]
      at::Tensor s = at::matmul(qd, kd.repeat_interleave(nh / nkv, 1).transpose(-1, -2)) / std::sqrt(double(hd));
      const at::Tensor causal = at::ones({T, T}, at::kBool).tril();
      s = s.masked_fill(same.logical_and(causal).logical_and(key_mask.ne(0).view({B, 1, 1, T})).logical_not(), -1e30);
      ref = at::matmul(at::softmax(s, -1), vd.repeat_interleave(nh / nkv, 1)).permute({0, 2, 1, 3}).reshape({B, T, nh * hd});
    }
    ref.backward(upstream.to(at::kBFloat16).to(at::kDouble));
    EXPECT_LE((out.detach().to(at::kDouble) - ref.detach()).abs().masked_select(real.expand_as(out)).max().item<double>(), 0.03)
        << (packed ? "packed" : "padded");
    for (const auto& [name, got, want] : {std::tuple{"q", q.grad(), qd.grad()}, std::tuple{"k", k.grad(), kd.grad()}, std::tuple{"v", v.grad(), vd.grad()}}) {
      const double scale = want.abs().max().item<double>();
      EXPECT_LE((got.to(at::kDouble) - want).abs().max().item<double>(), 0.03 * scale) << name << (packed ? " packed" : " padded");
      EXPECT_TRUE(at::isfinite(got).all().item<bool>()) << name;
    }
  }
}

}  // namespace
}  // namespace fme

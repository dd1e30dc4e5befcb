// Blocked attention (queries in blocks sized by a score budget) against one unblocked pass and against a
// plain reference written with full [T, T] scores: causal and bidirectional, grouped-query heads, padding,
// Gemma 2's soft cap and sliding window. The HF goldens have T = 13, below the smallest query block (16), so
// this is where blocking itself is checked.
#include <gtest/gtest.h>

#include <cmath>

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

}  // namespace
}  // namespace fme

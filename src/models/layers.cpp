#include "models/layers.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>
#include <limits>

namespace fme {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  const auto in_dtype = x.scalar_type();
  at::Tensor xf = x.to(at::kFloat);                               // [..., dim] fp32
  at::Tensor inv = at::rsqrt(xf.pow(2).mean(-1, true).add_(eps));  // [..., 1]
  return weight * (xf * inv).to(in_dtype);
}

std::pair<at::Tensor, at::Tensor> rope_tables(int64_t T, int64_t hd, double theta, at::ScalarType dtype) {
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  at::Tensor exponent = at::arange(0, hd, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) / double(hd);
  at::Tensor inv_freq = 1.0 / at::pow(theta, exponent);            // [hd/2]
  at::Tensor pos = at::arange(T, f32);                              // [T]
  at::Tensor freqs = at::outer(pos, inv_freq);                      // [T, hd/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);                     // [T, hd]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  at::Tensor rotated = at::cat({-x2, x1}, -1);                      // [B, n, T, hd]
  return x * cos + rotated * sin;                                   // cos, sin [T, hd] broadcast
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                     bool causal, int64_t query_block) {
  const int64_t B = q.size(0), nh = q.size(1), T = q.size(2), hd = q.size(3);
  const int64_t nkv = k.size(1), g = nh / nkv;
  const double scale = 1.0 / std::sqrt(double(hd));
  const float lowest = std::numeric_limits<float>::lowest();

  at::Tensor qg = q.view({B, nkv, g, T, hd});                       // query heads grouped by their kv head
  at::Tensor out = at::empty({B, nkv, g, T, hd}, q.options());
  at::Tensor keep_key = key_mask.to(at::kBool).view({B, 1, 1, 1, T});  // [B,1,1,1,T]

  for (int64_t t0 = 0; t0 < T; t0 += query_block) {
    const int64_t tb = std::min(query_block, T - t0);
    const int64_t kn = causal ? t0 + tb : T;                        // keys this block can see
    at::Tensor qb = qg.narrow(3, t0, tb).reshape({B, nkv, g * tb, hd});
    at::Tensor kb = k.narrow(2, 0, kn), vb = v.narrow(2, 0, kn);    // [B, nkv, kn, hd]
    at::Tensor scores = at::matmul(qb, kb.transpose(-1, -2));        // [B, nkv, g*tb, kn]
    scores = scores.to(at::kFloat).mul_(scale).view({B, nkv, g, tb, kn});
    at::Tensor allowed = keep_key.narrow(4, 0, kn);                  // [B,1,1,1,kn]
    if (causal) {
      at::Tensor qpos = at::arange(t0, t0 + tb, at::kLong).view({tb, 1});
      at::Tensor kpos = at::arange(kn, at::kLong).view({1, kn});
      allowed = allowed.logical_and(kpos.le(qpos).view({1, 1, 1, tb, kn}));
    }
    scores.masked_fill_(allowed.logical_not(), lowest);
    at::Tensor probs = at::softmax(scores, -1).to(q.scalar_type()).view({B, nkv, g * tb, kn});
    out.narrow(3, t0, tb).copy_(at::matmul(probs, vb).view({B, nkv, g, tb, hd}));
  }
  return out.permute({0, 3, 1, 2, 4}).reshape({B, T, nh * hd});     // [B, T, nh*hd]
}

}  // namespace fme

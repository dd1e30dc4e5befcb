// Building blocks shared by the architectures: RMSNorm, rotary embeddings, and masked multi-head attention
// (grouped-query, causal or bidirectional) computed block by block over queries, so a long context never
// materialises a T x T score matrix for all heads at once.
// Shapes: B = batch, T = time, nh = query heads, nkv = key/value heads, hd = head dim, H = hidden.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace fme {

// y = w * (x / sqrt(mean(x^2) + eps)), statistics in fp32 then cast back, as HF's Qwen2RMSNorm.
struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);  // [..., dim] -> [..., dim]
  at::Tensor weight;                        // (dim)
  double eps;
};
TORCH_MODULE(RMSNorm);

// Rotary position embedding tables for positions 0..T-1: cos, sin each [T, hd] in `dtype`
// (angles computed in fp32 as HF does: inv_freq = theta^(-2i/hd)).
std::pair<at::Tensor, at::Tensor> rope_tables(int64_t T, int64_t hd, double theta, at::ScalarType dtype);
// x [B, n, T, hd] rotated: x*cos + rotate_half(x)*sin, rotate_half(x) = cat(-x2, x1).
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// Scaled dot-product attention.
//   q [B, nh, T, hd], k and v [B, nkv, T, hd] (nh % nkv == 0: query head h reads kv head h / (nh/nkv))
//   key_mask [B, T] bool, true = real token; causal: query t sees keys <= t.
// Returns [B, T, nh*hd]. Softmax in fp32; masked scores are set (not added) to the lowest float, so padding
// never injects NaN and a row with no visible key stays finite.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                     bool causal, int64_t query_block = 512);

}  // namespace fme

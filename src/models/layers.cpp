#include "models/layers.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <limits>

#include "models/compute_copies.h"
#include "models/dropout.h"
#include "models/masked_softmax.h"
#include "models/parallel_ops.h"
#include "models/rms_norm_fused.h"
#include "models/rope_fused.h"
#include "util/error.h"

namespace fme {

namespace {
std::atomic<int64_t> g_score_budget{64ll << 20};
}  // namespace

int64_t attention_score_budget() { return g_score_budget.load(std::memory_order_relaxed); }
void set_attention_score_budget(int64_t bytes) { g_score_budget.store(std::max<int64_t>(bytes, 1), std::memory_order_relaxed); }

at::Tensor whole_input(const LinearImpl& consumer, const at::Tensor& x) {
  if (consumer.par.split != Split::Rowwise) return x;
  return gather_from_group(x, *consumer.par.group);
}

at::Tensor in_dtype_of(const at::Tensor& w, const at::Tensor& x) {
  if (w.scalar_type() == x.scalar_type()) return w;
  if (ComputeCopies* copies = ComputeCopyScope::active(); copies && copies->dtype() == x.scalar_type())
    if (at::Tensor copy = copies->find(w); copy.defined()) return copy;
  return w.to(x.scalar_type());
}

std::string join_path(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

LinearImpl::LinearImpl(Builder& b, const std::string& path, int64_t in, int64_t out, bool has_bias, int64_t parts_)
    : par(b.parallel(path)), parts(parts_) {
  weight = register_parameter("weight", b.param(join_path(path, "weight"), {out, in}));
  if (has_bias) bias = register_parameter("bias", b.param(join_path(path, "bias"), {out}));
  if (par.lora_r > 0) {
    lora_A = register_parameter("lora_A", b.param(join_path(path, "lora_A"), {par.lora_r, in}));
    lora_B = register_parameter("lora_B", b.param(join_path(path, "lora_B"), {out, par.lora_r}));
  }
}

LinearImpl::LinearImpl(InOut, Builder& b, const std::string& path, int64_t in, int64_t out, int64_t parts_)
    : par(b.parallel(path)), parts(parts_), in_out(true) {
  weight = register_parameter("weight", b.param(join_path(path, "weight"), {in, out}));
  bias = register_parameter("bias", b.param(join_path(path, "bias"), {out}));
  if (par.lora_r > 0) {
    lora_A = register_parameter("lora_A", b.param(join_path(path, "lora_A"), {par.lora_r, in}));
    lora_B = register_parameter("lora_B", b.param(join_path(path, "lora_B"), {out, par.lora_r}));
  }
}

at::Tensor LinearImpl::forward(const at::Tensor& x_in) {
  const bool rowwise = par.split == Split::Rowwise;
  // Colwise: x is whole on every process, and each one's gradient with respect to it covers only its own
  // outputs; copy_to_group sums those in the backward pass.
  const at::Tensor x = par.split == Split::Colwise ? copy_to_group(x_in, par.group) : x_in;
  const at::Tensor b = bias.defined() ? in_dtype_of(bias, x) : at::Tensor();
  const at::Tensor w = in_dtype_of(weight, x);
  at::Tensor y;  // [..., out]
  if (!in_out) {
    y = at::linear(x, w, rowwise ? at::Tensor() : b);
  } else {
    auto shape = x.sizes().vec();
    shape.back() = w.size(1);
    const at::Tensor x2 = x.reshape({-1, x.size(-1)});
    y = (rowwise ? at::mm(x2, w) : at::addmm(b, x2, w)).view(shape);
  }
  if (rowwise) {
    y = reduce_from_group(y, *par.group);  // partial sums over the input shards
    if (b.defined()) y.add_(b);
  }
  if (lora_A.defined()) {
    // h = x A^T [..., r], whole before B: colwise, A is whole and B holds this process's outputs, so h's
    // gradient is summed over the group (copy_to_group); rowwise, A holds the input shard's columns and h is
    // summed over the group first (B whole). Either way A and B get exactly their own gradients.
    at::Tensor h = at::linear(x_in, in_dtype_of(lora_A, x_in));
    if (rowwise) h = reduce_from_group(h, *par.group);
    else if (par.split == Split::Colwise) h = copy_to_group(h, par.group);
    y.add_(at::linear(h, in_dtype_of(lora_B, h)), par.lora_alpha / double(par.lora_r));
  }
  return y;
}

void check_head_split(const LinearImpl& proj, const std::string& path, int64_t heads, const std::string& what,
                      const std::string& all_heads) {
  if (proj.par.split == Split::None || !proj.par.group) return;
  const int size = proj.par.group->size();
  if (size <= 1 || heads % size == 0) return;
  throw ConfigError(path + ": " + std::to_string(heads) + " " + what + " heads cannot be split over mesh axis '" +
                    (proj.par.axis.empty() ? std::string("?") : proj.par.axis) + "' of size " + std::to_string(size) +
                    " (" + all_heads + "; the axis size must divide each head count)");
}

EmbeddingImpl::EmbeddingImpl(Builder& b, const std::string& path, int64_t num, int64_t dim) : par(b.parallel(path)) {
  weight = register_parameter("weight", b.param(join_path(path, "weight"), {num, dim}));
}

at::Tensor EmbeddingImpl::forward(const at::Tensor& ids, at::ScalarType dtype) {
  switch (par.split) {
    case Split::None:
      return at::embedding(weight, ids).to(dtype);
    case Split::Colwise:
      return gather_from_group(at::embedding(weight, ids).to(dtype), *par.group);  // [B,T,H/size] -> [B,T,H]
    case Split::Rowwise: {
      const int64_t rows = weight.size(0), first = par.group->rank() * rows;
      at::Tensor mine = ids.ge(first).logical_and(ids.lt(first + rows));      // [B,T]
      at::Tensor y = at::embedding(weight, (ids - first).clamp(0, rows - 1)).to(dtype);
      y = y * mine.unsqueeze(-1).to(y.scalar_type());
      return reduce_from_group(y, *par.group);
    }
  }
  return {};
}

LayerNormImpl::LayerNormImpl(Builder& b, const std::string& path, int64_t dim_, double eps_) : dim(dim_), eps(eps_) {
  weight = register_parameter("weight", b.param(join_path(path, "weight"), {dim}));
  bias = register_parameter("bias", b.param(join_path(path, "bias"), {dim}));
}

at::Tensor LayerNormImpl::forward(const at::Tensor& x) {
  // ATen 1.13's CPU layer_norm is ~9x slower on bf16 than converting to fp32 and back (7 ms against 0.8 ms
  // for 1024 x 768 here); the fp32 statistics are what it computes internally anyway.
  if (x.device().is_cpu() && x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble)
    return at::layer_norm(x.to(at::kFloat), {dim}, weight.to(at::kFloat), bias.to(at::kFloat), eps).to(x.scalar_type());
  return at::layer_norm(x, {dim}, in_dtype_of(weight, x), in_dtype_of(bias, x), eps);
}

RMSNormImpl::RMSNormImpl(Builder& b, const std::string& path, int64_t dim, double eps_, bool unit_offset_)
    : eps(eps_), unit_offset(unit_offset_) {
  weight = register_parameter("weight", b.param(join_path(path, "weight"), {dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  const at::Tensor weight = copy_to_group(this->weight, split_input_group);
  const auto in_dtype = x.scalar_type();
  if (!unit_offset) {
    const at::Tensor w = in_dtype_of(weight, x);
    if (rms_norm_fusable(x, w)) return rms_norm_fused(x, w, eps);  // bf16 training on the CPU: one autograd node
    at::Tensor xf = x.to(at::kFloat);                               // [..., dim] fp32
    at::Tensor inv = at::rsqrt(xf.pow(2).mean(-1, true).add_(eps));  // [..., 1]
    return w * (xf * inv).to(in_dtype);
  }
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor inv = at::rsqrt(xf.pow(2).mean(-1, true).add_(eps));
  return ((xf * inv) * (1.0 + weight.to(at::kFloat))).to(in_dtype);
}

std::pair<at::Tensor, at::Tensor> rope_tables(int64_t T, int64_t hd, double theta, at::ScalarType dtype,
                                              const RopeScaling& scaling) {
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  at::Tensor exponent = at::arange(0, hd, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) / double(hd);
  at::Tensor inv_freq = 1.0 / at::pow(theta, exponent);            // [hd/2]
  if (scaling.type == "llama3") {
    // Wavelengths above old_context / low_freq_factor are slowed by `factor`, those below
    // old_context / high_freq_factor kept, and the band between blended linearly in old_context / wavelen.
    const double old_ctx = double(scaling.original_max_position_embeddings);
    const double low_wavelen = old_ctx / scaling.low_freq_factor, high_wavelen = old_ctx / scaling.high_freq_factor;
    at::Tensor wavelen = inv_freq.reciprocal() * (2 * M_PI);        // Python's 2*pi / t is t.reciprocal() * 2*pi
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq);
    at::Tensor smooth = (wavelen.reciprocal() * old_ctx - scaling.low_freq_factor) /
                        (scaling.high_freq_factor - scaling.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled;
    at::Tensor medium = (wavelen < high_wavelen).logical_not().logical_and((wavelen > low_wavelen).logical_not());
    inv_freq = at::where(medium, smoothed, scaled);
  }
  at::Tensor pos = at::arange(T, f32);                              // [T]
  at::Tensor freqs = at::outer(pos, inv_freq);                      // [T, hd/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);                     // [T, hd]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  if (rope_fusable(x, cos, sin)) return rope_fused(x, cos, sin);  // bf16 training on the CPU: one node, heads first
  const int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  at::Tensor rotated = at::cat({-x2, x1}, -1);                      // [B, n, T, hd]
  return x * cos + rotated * sin;                                   // cos, sin [T, hd] or [B, 1, T, hd] broadcast
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                     const AttentionOptions& opts) {
  const int64_t B = q.size(0), nh = q.size(1), T = q.size(2), hd = q.size(3);
  const int64_t nkv = k.size(1), g = nh / nkv;
  const bool causal = opts.causal;
  const int64_t score_budget_bytes = opts.score_budget_bytes > 0 ? opts.score_budget_bytes : attention_score_budget();
  const double scale = opts.scale > 0 ? opts.scale : 1.0 / std::sqrt(double(hd));
  // Scores stay in q's dtype: the masked value is that dtype's lowest finite number, and softmax
  // accumulates reduced-precision inputs in fp32 inside its kernel (what HF's fp32 softmax + cast gives,
  // without two extra passes over the largest tensor of the layer).
  const double lowest = q.scalar_type() == at::kBFloat16 ? double(std::numeric_limits<c10::BFloat16>::lowest())
                        : q.scalar_type() == at::kHalf   ? double(std::numeric_limits<c10::Half>::lowest())
                                                         : double(std::numeric_limits<float>::lowest());
  // Scores of one query block: [B, nh, block, T] (plus the softmax's output); sized to the budget.
  const int64_t per_query = std::max<int64_t>(1, B * nh * T * q.element_size());
  // Causal: 256 queries skip a quarter of the scores at T = 512 (two blocks, the first seeing half the keys).
  // RoPE and attention of one Qwen2.5-0.5B layer at 1 x 512, bf16 fwd+bwd: 9.4-10.0 ms against 11.3 ms in one
  // block here; 128 gained nothing more.
  const int64_t query_block = std::clamp<int64_t>(score_budget_bytes / per_query, 16, causal ? 256 : 1024);

  at::Tensor qg = (q * scale).view({B, nkv, g, T, hd});             // scaled once; grouped by kv head
  at::Tensor out = at::empty({B, nkv, g, T, hd}, q.options());
  at::Tensor keep_key = key_mask.to(at::kBool).view({B, 1, 1, 1, T});  // [B,1,1,1,T]
  // Segment numbers instead of a bool mask: a query sees only the keys of its own segment (packed rows).
  const bool segmented = key_mask.scalar_type() != at::kBool;
  at::Tensor key_segment = segmented ? key_mask.view({B, 1, 1, 1, T}) : at::Tensor();  // [B,1,1,1,T]

  for (int64_t t0 = 0; t0 < T; t0 += query_block) {
    const int64_t tb = std::min(query_block, T - t0);
    const int64_t kn = causal ? t0 + tb : T;                        // keys this block can see
    at::Tensor qb = qg.narrow(3, t0, tb).reshape({B, nkv, g * tb, hd});
    at::Tensor kb = k.narrow(2, 0, kn), vb = v.narrow(2, 0, kn);    // [B, nkv, kn, hd]
    at::Tensor scores = at::matmul(qb, kb.transpose(-1, -2)).view({B, nkv, g, tb, kn});
    if (opts.softcap > 0) scores = at::tanh(scores / opts.softcap) * opts.softcap;  // cap * tanh(s / cap); tanh's backward reads its output
    at::Tensor allowed = keep_key.narrow(4, 0, kn);                  // [B,1,1,1,kn]
    if (segmented)                                                   // same segment as the query
      allowed = allowed.logical_and(key_segment.narrow(4, 0, kn).eq(key_segment.narrow(4, t0, tb).transpose(3, 4)));
    if (causal) {
      const auto on = at::TensorOptions().dtype(at::kLong).device(q.device());
      at::Tensor qpos = at::arange(t0, t0 + tb, on).view({tb, 1});
      at::Tensor kpos = at::arange(kn, on).view({1, kn});
      at::Tensor visible = kpos.le(qpos);                            // [tb, kn]
      if (opts.window > 0) visible = visible.logical_and(kpos.gt(qpos - opts.window));
      allowed = allowed.logical_and(visible.view({1, 1, 1, tb, kn}));
    }
    at::Tensor probs;  // [B, nkv, g, tb, kn]
    if (scores.requires_grad() && masked_softmax_applies(scores, allowed)) {
      probs = masked_softmax(scores, allowed);  // training: the fill and the softmax in one pass
    } else {
      scores.masked_fill_(allowed.logical_not(), lowest);
      probs = at::softmax(scores, -1);
    }
    probs = dropout(probs, opts.dropout, opts.dropout_stream).view({B, nkv, g * tb, kn});
    out.narrow(3, t0, tb).copy_(at::matmul(probs, vb).view({B, nkv, g, tb, hd}));
  }
  return out.permute({0, 3, 1, 2, 4}).reshape({B, T, nh * hd});     // [B, T, nh*hd]
}

}  // namespace fme

// Building blocks shared by the architectures: Linear (with tensor-parallel splits and LoRA), Embedding,
// LayerNorm, RMSNorm, rotary embeddings, and masked multi-head attention (grouped-query, causal or
// bidirectional) computed block by block over queries, so a long context never materialises a T x T score
// matrix for all heads at once. Parameters come from a Builder (models/build.h), by HF path.
// Shapes: B = batch, T = time, nh = query heads, nkv = key/value heads, hd = head dim, H = hidden.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "models/model_config.h"
#include "models/build.h"

namespace fme {

// y = x W^T + b, W (out, in). Colwise: W holds this process's out/size rows and y its slice of outputs.
// Rowwise: W holds in/size columns, x is this process's slice of inputs, partial sums are all-reduced, then
// b (replicated) is added once. LoRA: y += (x A^T) B^T * alpha/r, A (r, in), B (out, r), split like W.
// `parts` > 1: the outputs are that many equal fused blocks (GPT-2's c_attn: q, k, v), and a colwise split
// cuts each block alone, so this process holds [q_r, k_r, v_r], each out/parts/size wide.
struct LinearImpl : torch::nn::Module {
  LinearImpl(Builder& b, const std::string& path, int64_t in, int64_t out, bool bias, int64_t parts = 1);
  at::Tensor forward(const at::Tensor& x);  // [..., in(local)] -> [..., out(local)]
  at::Tensor weight, bias, lora_A, lora_B;
  ModuleParallel par;
  int64_t parts = 1;
  bool in_out = false;  // weight stored (in, out): GPT-2's Conv1D

 protected:
  struct InOut {};
  LinearImpl(InOut, Builder& b, const std::string& path, int64_t in, int64_t out, int64_t parts);
};
TORCH_MODULE(Linear);

// GPT-2's Conv1D: y = x W + b with W stored (in, out), the transpose of Linear's (HF's addmm). Otherwise a
// Linear: the same splits (over W's dim 1 colwise, dim 0 rowwise) and LoRA (A (r, in), B (out, r), as PEFT's
// fan_in_fan_out adapters). Plans see it as type "Conv1D".
struct Conv1DImpl : LinearImpl {
  Conv1DImpl(Builder& b, const std::string& path, int64_t in, int64_t out, int64_t parts = 1)
      : LinearImpl(InOut{}, b, path, in, out, parts) {}
};
TORCH_MODULE(Conv1D);

// Refuses, before any compute, a tensor-parallel split of `proj` that would cut an attention head: colwise
// (its outputs) or rowwise (its inputs) are `heads` heads of `what` ("query", "key/value"), and the mesh
// axis must divide that count. ConfigError naming the module, the head counts and the axis.
void check_head_split(const LinearImpl& proj, const std::string& path, int64_t heads, const std::string& what,
                      const std::string& all_heads);

// Rows of W (V, H) by id. Colwise: W holds H/size columns, gathered after lookup. Rowwise: W holds V/size
// rows; ids outside them give zeros and the partial results are all-reduced.
struct EmbeddingImpl : torch::nn::Module {
  EmbeddingImpl(Builder& b, const std::string& path, int64_t num, int64_t dim);
  // [B,T] int64 -> [B,T,H] in `dtype` (the compute dtype: rows are converted after the lookup).
  at::Tensor forward(const at::Tensor& ids, at::ScalarType dtype);
  at::Tensor weight;
  ModuleParallel par;
};
TORCH_MODULE(Embedding);

struct LayerNormImpl : torch::nn::Module {
  LayerNormImpl(Builder& b, const std::string& path, int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);  // [..., dim] -> [..., dim]
  at::Tensor weight, bias;
  int64_t dim;
  double eps;
};
TORCH_MODULE(LayerNorm);

// y = w * (x / sqrt(mean(x^2) + eps)), statistics in fp32 then cast back, as HF's LlamaRMSNorm / Qwen2RMSNorm.
// unit_offset (Gemma): y = (x / sqrt(mean(x^2) + eps)) * (1 + w), all in fp32, then cast back (Gemma2RMSNorm);
// its weight is initialised to zeros.
struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(Builder& b, const std::string& path, int64_t dim, double eps, bool unit_offset = false);
  at::Tensor forward(const at::Tensor& x);  // [..., dim] -> [..., dim]
  at::Tensor weight;                        // (dim)
  double eps;
  bool unit_offset;
  // Set when the norm acts on a tensor-parallel split activation (Qwen3's per-head q_norm/k_norm on this
  // process's heads): the whole weight's gradient is the sum of every process's part, summed over this group.
  std::shared_ptr<Collective> split_input_group;
};
TORCH_MODULE(RMSNorm);

// The whole input of `consumer` from this process's part of it: `x` itself, or, when `consumer` is rowwise
// (its input split over the mesh axis), the parts of every process gathered along the last dimension. Used
// to report a split activation (attention heads, MLP hidden units) whole; a collective, so every process of
// the axis must call it.
at::Tensor whole_input(const LinearImpl& consumer, const at::Tensor& x);

// Parameter `w` in the dtype of the activations `x`: `w` itself when they agree, its compute copy in a
// ComputeCopyScope (mixed-precision training: models/compute_copies.h), else a converted copy made just
// before the op and freed after it (bf16-stored weights with fp32 compute widen exactly, one GEMM's weight at
// a time).
at::Tensor in_dtype_of(const at::Tensor& w, const at::Tensor& x);

// "a.b" + "c" -> "a.b.c"; "" + "c" -> "c".
std::string join_path(const std::string& prefix, const std::string& name);

// Rotary position embedding tables for positions 0..T-1: cos, sin each [T, hd] in `dtype`
// (angles computed in fp32 as HF does: inv_freq = theta^(-2i/hd), then rescaled as `scaling` says:
// Llama 3.1's "llama3" divides low frequencies by factor and blends the band between, as HF's
// _compute_llama3_parameters).
std::pair<at::Tensor, at::Tensor> rope_tables(int64_t T, int64_t hd, double theta, at::ScalarType dtype,
                                              const RopeScaling& scaling = {});
// x [B, n, T, hd] rotated: x*cos + rotate_half(x)*sin, rotate_half(x) = cat(-x2, x1). Training in bf16 on the
// CPU with x the heads-first view of a projection's output: models/rope_fused.h (the result then contiguous).
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// Scaled dot-product attention.
//   q [B, nh, T, hd], k and v [B, nkv, T, hd] (nh % nkv == 0: query head h reads kv head h / (nh/nkv))
//   key_mask [B, T] bool, true = real token; or int64 segment numbers (0 = padding), where query t also sees
//   only the keys of its own segment (packed documents); causal: query t sees keys <= t.
// Returns [B, T, nh*hd]. Softmax accumulates in fp32; masked scores are set (not added) to the lowest finite value, so padding
// never injects NaN and a row with no visible key stays finite. Queries go in blocks sized so one block's
// fp32 scores stay near `score_budget_bytes`, and causal blocks of at most 256 queries (a block reads keys
// only up to its last query, so smaller blocks skip more of the masked half).
struct AttentionOptions {
  bool causal = false;
  double scale = 0;      // scores = q k^T * scale; 0: head_dim^-0.5
  double softcap = 0;    // > 0: scores = softcap * tanh(scores / softcap) before masking (Gemma 2)
  int64_t window = 0;    // > 0 (causal only): query t sees keys t - window + 1 .. t (sliding-window layers)
  double dropout = 0;    // training: dropout on the attention probabilities (models/dropout.h)
  uint64_t dropout_stream = 0;  // tensor parallel: this process's heads' own masks (its index in the group)
  int64_t score_budget_bytes = 0;  // 0: the process default (attention_score_budget())
};
// The process default budget, 64 MiB; settable so that a test can run whole models through 16-query blocks.
int64_t attention_score_budget();
void set_attention_score_budget(int64_t bytes);
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                     const AttentionOptions& opts);
inline at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                            bool causal) {
  AttentionOptions o;
  o.causal = causal;
  return attention(q, k, v, key_mask, o);
}

}  // namespace fme

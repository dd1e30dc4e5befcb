// config.json of the pre-norm decoder family (llama, mistral, qwen2, qwen3, gemma2): the fields HF's config
// classes define, every key that changes the math required, features fme lacks refused.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "util/json.h"

namespace fme {

// RoPE frequency scaling (config.json "rope_scaling"): none, or Llama 3.1's piecewise rescaling of the
// inverse frequencies ("rope_type": "llama3").
struct RopeScaling {
  std::string type;                           // "" (none) or "llama3"
  double factor = 0, low_freq_factor = 0, high_freq_factor = 0;
  int64_t original_max_position_embeddings = 0;
};

// The pre-norm decoder family: model_type "llama" (Llama 2/3/3.1/3.2, TinyLlama), "mistral" (without a
// sliding window), "qwen2" (Qwen2 / Qwen2.5) and "qwen3". One block (GQA attention with RoPE, SwiGLU MLP,
// RMSNorm); the variants differ by the flags below, each read from the keys HF's own config class uses.
struct DecoderConfig {
  std::string model_type;  // "llama", "mistral", "qwen2", "qwen3"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t max_position_embeddings = 0;
  int64_t head_dim_ = 0;  // explicit "head_dim", or 0: hidden_size / num_attention_heads
  double rms_norm_eps = 0;
  double rope_theta = 0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;  // optional in HF (default false)
  bool qkv_bias = false;   // q, k, v projections have biases (qwen2 always; llama/qwen3: attention_bias)
  bool o_bias = false;     // o_proj has a bias (llama/qwen3: attention_bias)
  bool mlp_bias = false;   // gate, up, down have biases (llama: mlp_bias)
  bool qk_norm = false;    // RMSNorm over each head of q and k before RoPE (qwen3)
  std::string hidden_act;  // "silu" (SwiGLU), or gemma2's "gelu_pytorch_tanh" (GeGLU)
  // Gemma 2 (model_type "gemma2"): embeddings times sqrt(hidden), (1 + w) RMSNorms, norms after attention and
  // around the MLP as well, attention scaled by query_pre_attn_scalar^-0.5, scores soft-capped as
  // cap * tanh(s / cap), and sliding-window attention on the layers `sliding` marks.
  bool gemma_norms = false;          // (1 + w) RMSNorm, post-attention and pre/post-feedforward norms, scaled embeddings
  double query_pre_attn_scalar = 0;  // 0: scores scaled by head_dim^-0.5
  double attn_logit_softcapping = 0;   // 0: none
  double final_logit_softcapping = 0;  // 0: none (training's logits)
  int64_t sliding_window = 0;          // keys a sliding layer's query sees (itself and the W - 1 before it)
  std::vector<bool> sliding;           // per layer: sliding-window attention
  double initializer_range = 0.02;
  double attention_dropout = 0;     // training only  // optional, used by init
  int64_t head_dim() const { return head_dim_ > 0 ? head_dim_ : hidden_size / num_attention_heads; }
};

// Parses config.json of model_type `type` (one of DecoderConfig::model_type's); `what` names the file.
DecoderConfig parse_decoder_config(const Json& j, const std::string& type, const std::string& what);
// An HF-compatible config.json of it (with "model_type" and "architectures").
Json decoder_config_json(const DecoderConfig& c);

}  // namespace fme

// Hugging Face config.json for the architectures fme runs. Required keys throw ConfigError naming the file
// and the key; there are no silent defaults for anything that changes the math.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
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
  double initializer_range = 0.02;  // optional, used by init
  int64_t head_dim() const { return head_dim_ > 0 ? head_dim_ : hidden_size / num_attention_heads; }
};

// model_type "bert".
struct BertConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t max_position_embeddings = 0;
  int64_t type_vocab_size = 0;
  double layer_norm_eps = 0;
  std::string hidden_act;  // "gelu" (erf) or "gelu_new"/"gelu_pytorch_tanh" (tanh)
  int64_t pad_token_id = 0;
  double initializer_range = 0.02;
  std::string position_embedding_type = "absolute";  // only "absolute" is supported
  // Not in config.json: whether the model has BertModel's pooler (BertForMaskedLM's encoder has none; the
  // loader sets it from the checkpoint).
  bool pooler = true;
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

// model_type "gpt2": learned positions, pre-LayerNorm blocks, fused q/k/v, Conv1D weights stored (in, out).
// Fields carry the names the rest of fme uses; config.json spells them n_embd, n_layer, n_head, n_inner,
// n_positions, layer_norm_epsilon.
struct Gpt2Config {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;              // n_embd
  int64_t intermediate_size = 0;        // n_inner, or 4 * n_embd when null
  int64_t num_hidden_layers = 0;        // n_layer
  int64_t num_attention_heads = 0;      // n_head
  int64_t max_position_embeddings = 0;  // n_positions: a hard limit (learned positions)
  double layer_norm_eps = 0;            // layer_norm_epsilon
  std::string activation_function;      // gelu_new / gelu_pytorch_tanh (tanh) or gelu (erf)
  bool scale_attn_by_inverse_layer_idx = false;  // scores also divided by layer index + 1
  bool tie_word_embeddings = true;
  double initializer_range = 0.02;
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

using ModelConfig = std::variant<DecoderConfig, BertConfig, Gpt2Config>;

// Parses a config.json document; `what` names the file in errors. Checks divisibility
// (hidden % heads, heads % kv heads) and positivity.
ModelConfig parse_model_config(const Json& j, const std::string& what);
// Reads DIR/config.json.
ModelConfig load_model_config(const std::string& dir);

// Serialises a config to an HF-compatible config.json document (with "model_type" and "architectures").
Json to_json(const ModelConfig& c);

std::string model_type(const ModelConfig& c);  // config.json's model_type

// The model_type values fme runs, for messages: "llama, mistral, qwen2, qwen3, bert".
const char* supported_model_types();

}  // namespace fme

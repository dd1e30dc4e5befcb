// config.json of GPT-2 (GPT2LMHeadModel): every key that changes the math required.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "util/json.h"

namespace fme {

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
  double resid_pdrop = 0.1, embd_pdrop = 0.1, attn_pdrop = 0.1;  // training only; HF's defaults
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

// Parses config.json of model_type "gpt2"; `what` names the file.
Gpt2Config parse_gpt2_config(const Json& j, const std::string& what);
// An HF-compatible config.json of it.
Json gpt2_config_json(const Gpt2Config& c);

}  // namespace fme

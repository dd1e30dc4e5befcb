#include "models/gpt2/config.h"

#include "models/config_keys.h"
#include "util/error.h"

namespace fme {

Gpt2Config parse_gpt2_config(const Json& j, const std::string& what) {
  Gpt2Config c;
  c.vocab_size = require<int64_t>(j, "vocab_size", what);
  c.hidden_size = require<int64_t>(j, "n_embd", what);
  c.num_hidden_layers = require<int64_t>(j, "n_layer", what);
  c.num_attention_heads = require<int64_t>(j, "n_head", what);
  c.max_position_embeddings = require<int64_t>(j, "n_positions", what);
  c.intermediate_size = j.contains("n_inner") && !j["n_inner"].is_null() ? require<int64_t>(j, "n_inner", what)
                                                                          : 4 * c.hidden_size;  // HF's GPT2MLP rule
  c.layer_norm_eps = require<double>(j, "layer_norm_epsilon", what);
  c.activation_function = require<std::string>(j, "activation_function", what);
  c.scale_attn_by_inverse_layer_idx = optional<bool>(j, "scale_attn_by_inverse_layer_idx", false, what);
  c.tie_word_embeddings = optional<bool>(j, "tie_word_embeddings", true, what);
  c.initializer_range = optional<double>(j, "initializer_range", 0.02, what);
  c.resid_pdrop = optional<double>(j, "resid_pdrop", 0.1, what);
  c.embd_pdrop = optional<double>(j, "embd_pdrop", 0.1, what);
  c.attn_pdrop = optional<double>(j, "attn_pdrop", 0.1, what);
  if (!optional<bool>(j, "scale_attn_weights", true, what))
    throw UnsupportedError(what + ": scale_attn_weights=false is not supported (scores are scaled by head_dim^-0.5)");
  if (optional<bool>(j, "add_cross_attention", false, what))
    throw UnsupportedError(what + ": add_cross_attention=true is not supported (fme's GPT-2 is decoder-only)");
  if (c.activation_function != "gelu_new" && c.activation_function != "gelu_pytorch_tanh" &&
      c.activation_function != "gelu")
    throw UnsupportedError(what + ": activation_function '" + c.activation_function +
                           "' is not supported for gpt2 (supported: gelu_new, gelu_pytorch_tanh, gelu)");
  check_positive(c.vocab_size, "vocab_size", what);
  check_positive(c.hidden_size, "n_embd", what);
  check_positive(c.intermediate_size, "n_inner", what);
  check_positive(c.num_hidden_layers, "n_layer", what);
  check_positive(c.num_attention_heads, "n_head", what);
  check_positive(c.max_position_embeddings, "n_positions", what);
  check_positive(c.layer_norm_eps, "layer_norm_epsilon", what);
  check_initializer_range(c.initializer_range, what);
  check_probability(c.resid_pdrop, "resid_pdrop", what);
  check_probability(c.embd_pdrop, "embd_pdrop", what);
  check_probability(c.attn_pdrop, "attn_pdrop", what);
  check_heads(c.hidden_size, c.num_attention_heads, what);
  return c;
}

Json gpt2_config_json(const Gpt2Config& c) {
  Json j;
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  j["vocab_size"] = c.vocab_size;
  j["n_embd"] = c.hidden_size;
  j["n_inner"] = c.intermediate_size;
  j["n_layer"] = c.num_hidden_layers;
  j["n_head"] = c.num_attention_heads;
  j["n_positions"] = c.max_position_embeddings;
  j["layer_norm_epsilon"] = c.layer_norm_eps;
  j["activation_function"] = c.activation_function;
  j["scale_attn_weights"] = true;
  j["scale_attn_by_inverse_layer_idx"] = c.scale_attn_by_inverse_layer_idx;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["initializer_range"] = c.initializer_range;
  j["resid_pdrop"] = c.resid_pdrop;
  j["embd_pdrop"] = c.embd_pdrop;
  j["attn_pdrop"] = c.attn_pdrop;
  return j;
}

}  // namespace fme

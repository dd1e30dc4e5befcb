// Hugging Face config.json for the architectures fme runs. Required keys throw ConfigError naming the file
// and the key; there are no silent defaults for anything that changes the math.
#pragma once
#include <cstdint>
#include <string>
#include <variant>

#include "util/json.h"

namespace fme {

// model_type "qwen2" (Qwen2 / Qwen2.5).
struct Qwen2Config {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 0;
  double rope_theta = 0;
  bool tie_word_embeddings = false;  // optional in HF (default false)
  std::string hidden_act;            // must be "silu"
  double initializer_range = 0.02;   // optional, used by init
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
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
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

using ModelConfig = std::variant<Qwen2Config, BertConfig>;

// Parses a config.json document; `what` names the file in errors. Checks divisibility
// (hidden % heads, heads % kv heads) and positivity.
ModelConfig parse_model_config(const Json& j, const std::string& what);
// Reads DIR/config.json.
ModelConfig load_model_config(const std::string& dir);

// Serialises a config to an HF-compatible config.json document (with "model_type" and "architectures").
Json to_json(const ModelConfig& c);

std::string model_type(const ModelConfig& c);  // "qwen2" or "bert"

}  // namespace fme

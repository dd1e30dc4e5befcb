// config.json -> Qwen2Config / BertConfig. Every key that changes the math is required (no silent
// HF-version-dependent defaults), and features fme does not implement are refused, not ignored.
#include "formats/hf_config.h"

#include "util/error.h"
#include "util/file.h"

namespace fme {
namespace {

void check_positive(int64_t v, const char* key, const std::string& what) {
  if (v <= 0) throw ConfigError(what + ": '" + key + "' must be positive, got " + std::to_string(v));
}

void check_positive(double v, const char* key, const std::string& what) {
  if (!(v > 0)) throw ConfigError(what + ": '" + key + "' must be positive, got " + describe_json(Json(v)));
}

void check_heads(int64_t hidden, int64_t heads, const std::string& what) {
  if (hidden % heads != 0)
    throw ConfigError(what + ": hidden_size " + std::to_string(hidden) + " is not divisible by num_attention_heads " +
                      std::to_string(heads));
}

Qwen2Config parse_qwen2(const Json& j, const std::string& what) {
  Qwen2Config c;
  c.vocab_size = require<int64_t>(j, "vocab_size", what);
  c.hidden_size = require<int64_t>(j, "hidden_size", what);
  c.intermediate_size = require<int64_t>(j, "intermediate_size", what);
  c.num_hidden_layers = require<int64_t>(j, "num_hidden_layers", what);
  c.num_attention_heads = require<int64_t>(j, "num_attention_heads", what);
  c.num_key_value_heads = require<int64_t>(j, "num_key_value_heads", what);
  c.rms_norm_eps = require<double>(j, "rms_norm_eps", what);
  c.rope_theta = require<double>(j, "rope_theta", what);
  c.hidden_act = require<std::string>(j, "hidden_act", what);
  c.max_position_embeddings = require<int64_t>(j, "max_position_embeddings", what);
  c.tie_word_embeddings = optional<bool>(j, "tie_word_embeddings", false, what);
  c.initializer_range = optional<double>(j, "initializer_range", 0.02, what);

  if (optional<bool>(j, "use_sliding_window", false, what))
    throw UnsupportedError(what + ": use_sliding_window=true is not supported: fme's Qwen2 attention always sees the "
                                  "whole sequence, so a sliding-window model would give different activations");
  auto rs = j.find("rope_scaling");
  if (rs != j.end() && !rs->is_null())
    throw UnsupportedError(what + ": rope_scaling=" + describe_json(*rs) +
                           " is not supported: fme implements plain RoPE (rope_theta only); scaled variants "
                           "(linear, dynamic, yarn, ...) would change the positional encoding");
  if (c.hidden_act != "silu")
    throw UnsupportedError(what + ": hidden_act '" + c.hidden_act + "' is not supported for qwen2 (only 'silu')");

  check_positive(c.vocab_size, "vocab_size", what);
  check_positive(c.hidden_size, "hidden_size", what);
  check_positive(c.intermediate_size, "intermediate_size", what);
  check_positive(c.num_hidden_layers, "num_hidden_layers", what);
  check_positive(c.num_attention_heads, "num_attention_heads", what);
  check_positive(c.num_key_value_heads, "num_key_value_heads", what);
  check_positive(c.max_position_embeddings, "max_position_embeddings", what);
  check_positive(c.rms_norm_eps, "rms_norm_eps", what);
  check_positive(c.rope_theta, "rope_theta", what);
  if (c.initializer_range < 0)
    throw ConfigError(what + ": 'initializer_range' must not be negative, got " + describe_json(Json(c.initializer_range)));
  check_heads(c.hidden_size, c.num_attention_heads, what);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    throw ConfigError(what + ": num_attention_heads " + std::to_string(c.num_attention_heads) +
                      " is not divisible by num_key_value_heads " + std::to_string(c.num_key_value_heads));
  // RoPE rotates pairs of channels, so each head needs an even width.
  if (c.head_dim() % 2 != 0)
    throw ConfigError(what + ": head_dim " + std::to_string(c.head_dim()) + " (hidden_size / num_attention_heads) must be "
                      "even for RoPE");
  // Newer exporters may spell head_dim out; fme derives it, so a different value would be ignored silently.
  int64_t explicit_head_dim = optional<int64_t>(j, "head_dim", c.head_dim(), what);
  if (explicit_head_dim != c.head_dim())
    throw UnsupportedError(what + ": head_dim " + std::to_string(explicit_head_dim) +
                           " differs from hidden_size / num_attention_heads = " + std::to_string(c.head_dim()) +
                           "; fme supports only the derived head width");
  return c;
}

BertConfig parse_bert(const Json& j, const std::string& what) {
  BertConfig c;
  c.vocab_size = require<int64_t>(j, "vocab_size", what);
  c.hidden_size = require<int64_t>(j, "hidden_size", what);
  c.intermediate_size = require<int64_t>(j, "intermediate_size", what);
  c.num_hidden_layers = require<int64_t>(j, "num_hidden_layers", what);
  c.num_attention_heads = require<int64_t>(j, "num_attention_heads", what);
  c.max_position_embeddings = require<int64_t>(j, "max_position_embeddings", what);
  c.type_vocab_size = require<int64_t>(j, "type_vocab_size", what);
  c.layer_norm_eps = require<double>(j, "layer_norm_eps", what);
  c.hidden_act = require<std::string>(j, "hidden_act", what);
  c.pad_token_id = optional<int64_t>(j, "pad_token_id", 0, what);
  c.initializer_range = optional<double>(j, "initializer_range", 0.02, what);
  c.position_embedding_type = optional<std::string>(j, "position_embedding_type", "absolute", what);

  if (c.position_embedding_type != "absolute")
    throw UnsupportedError(what + ": position_embedding_type '" + c.position_embedding_type +
                           "' is not supported (only 'absolute': fme adds learned position embeddings)");
  if (c.hidden_act != "gelu" && c.hidden_act != "gelu_new" && c.hidden_act != "gelu_pytorch_tanh")
    throw UnsupportedError(what + ": hidden_act '" + c.hidden_act +
                           "' is not supported for bert (supported: gelu, gelu_new, gelu_pytorch_tanh)");
  if (optional<bool>(j, "is_decoder", false, what))
    throw UnsupportedError(what + ": is_decoder=true is not supported: fme's BERT is an encoder (no causal mask)");

  check_positive(c.vocab_size, "vocab_size", what);
  check_positive(c.hidden_size, "hidden_size", what);
  check_positive(c.intermediate_size, "intermediate_size", what);
  check_positive(c.num_hidden_layers, "num_hidden_layers", what);
  check_positive(c.num_attention_heads, "num_attention_heads", what);
  check_positive(c.max_position_embeddings, "max_position_embeddings", what);
  check_positive(c.type_vocab_size, "type_vocab_size", what);
  check_positive(c.layer_norm_eps, "layer_norm_eps", what);
  if (c.initializer_range < 0)
    throw ConfigError(what + ": 'initializer_range' must not be negative, got " + describe_json(Json(c.initializer_range)));
  if (c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size)
    throw ConfigError(what + ": pad_token_id " + std::to_string(c.pad_token_id) + " is outside the vocabulary [0, " +
                      std::to_string(c.vocab_size) + ")");
  check_heads(c.hidden_size, c.num_attention_heads, what);
  return c;
}

}  // namespace

ModelConfig parse_model_config(const Json& j, const std::string& what) {
  const std::string type = require<std::string>(j, "model_type", what);
  if (type == "qwen2") return parse_qwen2(j, what);
  if (type == "bert") return parse_bert(j, what);
  throw UnsupportedError(what + ": model_type " + describe_json(Json(type)) +
                         " is not supported (supported: qwen2, bert)");
}

ModelConfig load_model_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  return parse_model_config(parse_json_unique_keys(read_file(path), path), path);
}

std::string model_type(const ModelConfig& c) { return std::holds_alternative<Qwen2Config>(c) ? "qwen2" : "bert"; }

Json to_json(const ModelConfig& config) {
  Json j;
  if (const auto* q = std::get_if<Qwen2Config>(&config)) {
    j["architectures"] = {"Qwen2ForCausalLM"};
    j["model_type"] = "qwen2";
    j["vocab_size"] = q->vocab_size;
    j["hidden_size"] = q->hidden_size;
    j["intermediate_size"] = q->intermediate_size;
    j["num_hidden_layers"] = q->num_hidden_layers;
    j["num_attention_heads"] = q->num_attention_heads;
    j["num_key_value_heads"] = q->num_key_value_heads;
    j["max_position_embeddings"] = q->max_position_embeddings;
    j["rms_norm_eps"] = q->rms_norm_eps;
    j["rope_theta"] = q->rope_theta;
    j["tie_word_embeddings"] = q->tie_word_embeddings;
    j["hidden_act"] = q->hidden_act;
    j["initializer_range"] = q->initializer_range;
    // Spelled out so HF loads exactly what fme runs: full attention, plain RoPE.
    j["use_sliding_window"] = false;
    j["rope_scaling"] = nullptr;
  } else {
    const auto& b = std::get<BertConfig>(config);
    j["architectures"] = {"BertModel"};
    j["model_type"] = "bert";
    j["vocab_size"] = b.vocab_size;
    j["hidden_size"] = b.hidden_size;
    j["intermediate_size"] = b.intermediate_size;
    j["num_hidden_layers"] = b.num_hidden_layers;
    j["num_attention_heads"] = b.num_attention_heads;
    j["max_position_embeddings"] = b.max_position_embeddings;
    j["type_vocab_size"] = b.type_vocab_size;
    j["layer_norm_eps"] = b.layer_norm_eps;
    j["hidden_act"] = b.hidden_act;
    j["pad_token_id"] = b.pad_token_id;
    j["initializer_range"] = b.initializer_range;
    j["position_embedding_type"] = b.position_embedding_type;
  }
  j["torch_dtype"] = "float32";
  return j;
}

}  // namespace fme

#include "models/decoder/config.h"

#include <algorithm>
#include <map>

#include "models/config_keys.h"
#include "util/error.h"

namespace fme {

namespace {

// "rope_scaling": null, {"rope_type": "default"} or Llama 3.1's {"rope_type": "llama3", factor, low_freq_factor,
// high_freq_factor, original_max_position_embeddings}; other schemes change the positions and are refused.
RopeScaling parse_rope_scaling(const Json& j, const std::string& what) {
  RopeScaling r;
  auto rs = j.find("rope_scaling");
  if (rs == j.end() || rs->is_null()) return r;
  if (!rs->is_object()) throw ConfigError(what + ": 'rope_scaling' must be an object or null, got " + describe_json(*rs));
  const std::string sub = what + " rope_scaling";
  std::string type = rs->contains("rope_type") ? require<std::string>(*rs, "rope_type", sub)
                                               : optional<std::string>(*rs, "type", "default", sub);
  if (type == "default") return r;
  if (type != "llama3")
    throw UnsupportedError(what + ": rope_scaling type '" + type +
                           "' is not supported (supported: null, default, llama3); it would change the positional encoding");
  r.type = type;
  r.factor = require<double>(*rs, "factor", sub);
  r.low_freq_factor = require<double>(*rs, "low_freq_factor", sub);
  r.high_freq_factor = require<double>(*rs, "high_freq_factor", sub);
  r.original_max_position_embeddings = require<int64_t>(*rs, "original_max_position_embeddings", sub);
  check_positive(r.factor, "rope_scaling.factor", what);
  check_positive(r.low_freq_factor, "rope_scaling.low_freq_factor", what);
  check_positive(r.original_max_position_embeddings, "rope_scaling.original_max_position_embeddings", what);
  if (!(r.high_freq_factor > r.low_freq_factor))
    throw ConfigError(what + ": rope_scaling.high_freq_factor must exceed low_freq_factor, got " +
                      describe_json(Json(r.high_freq_factor)) + " and " + describe_json(Json(r.low_freq_factor)));
  return r;
}

}  // namespace

// The decoder family. Each variant reads the keys its HF config class has, with that class's defaults where
// HF itself defines one (Llama: num_key_value_heads = num_attention_heads, rope_theta 10000, no biases);
// keys whose HF default differs between versions are required.
DecoderConfig parse_decoder_config(const Json& j, const std::string& type, const std::string& what) {
  const bool llama_like = type == "llama" || type == "mistral";
  const bool gemma = type == "gemma2";
  DecoderConfig c;
  c.model_type = type;
  c.vocab_size = require<int64_t>(j, "vocab_size", what);
  c.hidden_size = require<int64_t>(j, "hidden_size", what);
  c.intermediate_size = require<int64_t>(j, "intermediate_size", what);
  c.num_hidden_layers = require<int64_t>(j, "num_hidden_layers", what);
  c.num_attention_heads = require<int64_t>(j, "num_attention_heads", what);
  c.num_key_value_heads = llama_like ? optional<int64_t>(j, "num_key_value_heads", c.num_attention_heads, what)
                                     : require<int64_t>(j, "num_key_value_heads", what);
  if (llama_like && j.contains("num_key_value_heads") && j["num_key_value_heads"].is_null())
    c.num_key_value_heads = c.num_attention_heads;
  c.rms_norm_eps = require<double>(j, "rms_norm_eps", what);
  c.rope_theta = llama_like ? optional<double>(j, "rope_theta", 10000.0, what) : require<double>(j, "rope_theta", what);
  c.rope_scaling = parse_rope_scaling(j, what);
  // Gemma2Config calls it hidden_activation (hidden_act is its deprecated spelling).
  c.hidden_act = gemma && j.contains("hidden_activation") && !j["hidden_activation"].is_null()
                     ? require<std::string>(j, "hidden_activation", what)
                     : require<std::string>(j, "hidden_act", what);
  c.max_position_embeddings = require<int64_t>(j, "max_position_embeddings", what);
  c.tie_word_embeddings = optional<bool>(j, "tie_word_embeddings", gemma, what);  // Gemma2Config: tied by default
  c.initializer_range = optional<double>(j, "initializer_range", 0.02, what);
  c.attention_dropout = optional<double>(j, "attention_dropout", 0.0, what);
  if (j.contains("head_dim") && !j["head_dim"].is_null()) c.head_dim_ = require<int64_t>(j, "head_dim", what);
  else if (type == "qwen3" || gemma) require<int64_t>(j, "head_dim", what);  // HF's defaults are not hidden/heads
  if (type == "qwen2") {
    c.qkv_bias = true;  // HF's Qwen2Attention: bias on q, k, v always, none on o
  } else {
    c.qkv_bias = c.o_bias = optional<bool>(j, "attention_bias", false, what);
  }
  if (type == "llama") c.mlp_bias = optional<bool>(j, "mlp_bias", false, what);
  c.qk_norm = type == "qwen3";

  if (type == "qwen2" || type == "qwen3") {
    if (optional<bool>(j, "use_sliding_window", false, what))
      throw UnsupportedError(what + ": use_sliding_window=true is not supported: fme's attention always sees the "
                                    "whole sequence, so a sliding-window model would give different activations");
  }
  if (gemma) {
    c.gemma_norms = true;
    c.query_pre_attn_scalar = require<double>(j, "query_pre_attn_scalar", what);
    check_positive(c.query_pre_attn_scalar, "query_pre_attn_scalar", what);
    auto cap = [&](const char* key) {
      if (!j.contains(key) || j[key].is_null()) return 0.0;
      const double v = require<double>(j, key, what);
      check_positive(v, key, what);
      return v;
    };
    c.attn_logit_softcapping = cap("attn_logit_softcapping");
    c.final_logit_softcapping = cap("final_logit_softcapping");
    c.sliding_window = require<int64_t>(j, "sliding_window", what);
    check_positive(c.sliding_window, "sliding_window", what);
  }
  c.sliding.assign(static_cast<size_t>(std::max<int64_t>(c.num_hidden_layers, 0)), false);
  if (auto lt = j.find("layer_types"); lt != j.end() && !lt->is_null()) {
    if (!lt->is_array()) throw ConfigError(what + ": 'layer_types' must be a list, got " + describe_json(*lt));
    if (static_cast<int64_t>(lt->size()) != c.num_hidden_layers)
      throw ConfigError(what + ": 'layer_types' has " + std::to_string(lt->size()) + " entries for " +
                        std::to_string(c.num_hidden_layers) + " layers");
    for (size_t i = 0; i < lt->size(); ++i) {
      const Json& t = (*lt)[i];
      const bool full = t.is_string() && t.get<std::string>() == "full_attention";
      const bool window = gemma && t.is_string() && t.get<std::string>() == "sliding_attention";
      if (!full && !window)
        throw UnsupportedError(what + ": layer_types entry " + describe_json(t) + " is not supported (" +
                               (gemma ? "full_attention or sliding_attention" : "fme runs full attention here") + ")");
      c.sliding[i] = window;
    }
  } else if (gemma) {
    for (size_t i = 0; i < c.sliding.size(); ++i) c.sliding[i] = i % 2 == 0;  // Gemma2Config: even layers slide
  }
  if (type == "mistral") {
    // HF's MistralConfig defaults sliding_window to 4096; null means none. fme has no sliding window, so it
    // runs a windowed model only where the window covers every position it can be given.
    const Json sw = j.contains("sliding_window") ? j["sliding_window"] : Json(4096);
    if (!sw.is_null()) {
      if (!sw.is_number_integer()) throw ConfigError(what + ": 'sliding_window' must be an integer or null, got " + describe_json(sw));
      if (sw.get<int64_t>() < c.max_position_embeddings)
        throw UnsupportedError(what + ": sliding_window " + describe_json(sw) + " is smaller than max_position_embeddings " +
                               std::to_string(c.max_position_embeddings) +
                               ": sliding-window attention is not supported (Mistral v0.2 and later have none)");
    }
  }
  const std::string act = gemma ? "gelu_pytorch_tanh" : "silu";
  if (c.hidden_act != act)
    throw UnsupportedError(what + ": hidden_act '" + c.hidden_act + "' is not supported for " + type + " (only '" + act + "')");

  check_positive(c.vocab_size, "vocab_size", what);
  check_positive(c.hidden_size, "hidden_size", what);
  check_positive(c.intermediate_size, "intermediate_size", what);
  check_positive(c.num_hidden_layers, "num_hidden_layers", what);
  check_positive(c.num_attention_heads, "num_attention_heads", what);
  check_positive(c.num_key_value_heads, "num_key_value_heads", what);
  check_positive(c.max_position_embeddings, "max_position_embeddings", what);
  check_positive(c.rms_norm_eps, "rms_norm_eps", what);
  check_positive(c.rope_theta, "rope_theta", what);
  if (c.head_dim_ != 0) check_positive(c.head_dim_, "head_dim", what);
  check_initializer_range(c.initializer_range, what);
  check_probability(c.attention_dropout, "attention_dropout", what);
  if (c.head_dim_ == 0) check_heads(c.hidden_size, c.num_attention_heads, what);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    throw ConfigError(what + ": num_attention_heads " + std::to_string(c.num_attention_heads) +
                      " is not divisible by num_key_value_heads " + std::to_string(c.num_key_value_heads));
  // RoPE rotates pairs of channels, so each head needs an even width.
  if (c.head_dim() % 2 != 0)
    throw ConfigError(what + ": head_dim " + std::to_string(c.head_dim()) + " must be even for RoPE");
  return c;
}

Json decoder_config_json(const DecoderConfig& c) {
  Json j;
  static const std::map<std::string, std::string> arch = {{"llama", "LlamaForCausalLM"},
                                                          {"mistral", "MistralForCausalLM"},
                                                          {"qwen2", "Qwen2ForCausalLM"},
                                                          {"qwen3", "Qwen3ForCausalLM"},
                                                          {"gemma2", "Gemma2ForCausalLM"}};
  j["architectures"] = {arch.at(c.model_type)};
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim();
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j[c.model_type == "gemma2" ? "hidden_activation" : "hidden_act"] = c.hidden_act;
  if (c.model_type == "gemma2") {
    j["query_pre_attn_scalar"] = c.query_pre_attn_scalar;
    j["attn_logit_softcapping"] = c.attn_logit_softcapping > 0 ? Json(c.attn_logit_softcapping) : Json(nullptr);
    j["final_logit_softcapping"] = c.final_logit_softcapping > 0 ? Json(c.final_logit_softcapping) : Json(nullptr);
    j["sliding_window"] = c.sliding_window;
    Json types = Json::array();
    for (bool w : c.sliding) types.push_back(w ? "sliding_attention" : "full_attention");
    j["layer_types"] = types;
  }
  j["initializer_range"] = c.initializer_range;
  j["attention_dropout"] = c.attention_dropout;
  if (c.model_type != "qwen2") j["attention_bias"] = c.qkv_bias;
  if (c.model_type == "llama") j["mlp_bias"] = c.mlp_bias;
  // Spelled out so HF loads exactly what fme runs: full attention, the RoPE fme computes.
  if (c.model_type == "qwen2" || c.model_type == "qwen3") j["use_sliding_window"] = false;
  if (c.model_type == "mistral") j["sliding_window"] = nullptr;
  if (c.rope_scaling.type.empty()) {
    j["rope_scaling"] = nullptr;
  } else {
    j["rope_scaling"] = {{"rope_type", c.rope_scaling.type},
                         {"factor", c.rope_scaling.factor},
                         {"low_freq_factor", c.rope_scaling.low_freq_factor},
                         {"high_freq_factor", c.rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  }
  return j;
}

}  // namespace fme

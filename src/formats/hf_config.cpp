// config.json -> DecoderConfig (llama, mistral, qwen2, qwen3) / BertConfig. Every key that changes the math is required (no silent
// HF-version-dependent defaults), and features fme does not implement are refused, not ignored.
#include "formats/hf_config.h"

#include <algorithm>
#include <map>

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

// The decoder family. Each variant reads the keys its HF config class has, with that class's defaults where
// HF itself defines one (Llama: num_key_value_heads = num_attention_heads, rope_theta 10000, no biases);
// keys whose HF default differs between versions are required.
DecoderConfig parse_decoder(const Json& j, const std::string& type, const std::string& what) {
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
  if (c.initializer_range < 0)
    throw ConfigError(what + ": 'initializer_range' must not be negative, got " + describe_json(Json(c.initializer_range)));
  if (c.head_dim_ == 0) check_heads(c.hidden_size, c.num_attention_heads, what);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    throw ConfigError(what + ": num_attention_heads " + std::to_string(c.num_attention_heads) +
                      " is not divisible by num_key_value_heads " + std::to_string(c.num_key_value_heads));
  // RoPE rotates pairs of channels, so each head needs an even width.
  if (c.head_dim() % 2 != 0)
    throw ConfigError(what + ": head_dim " + std::to_string(c.head_dim()) + " must be even for RoPE");
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

Gpt2Config parse_gpt2(const Json& j, const std::string& what) {
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
  check_heads(c.hidden_size, c.num_attention_heads, what);
  return c;
}

}  // namespace

ModelConfig parse_model_config(const Json& j, const std::string& what) {
  const std::string type = require<std::string>(j, "model_type", what);
  if (type == "llama" || type == "mistral" || type == "qwen2" || type == "qwen3" || type == "gemma2")
    return parse_decoder(j, type, what);
  if (type == "bert") return parse_bert(j, what);
  if (type == "gpt2") return parse_gpt2(j, what);
  throw UnsupportedError(what + ": model_type " + describe_json(Json(type)) + " is not supported (supported: " +
                         supported_model_types() + ")");
}

ModelConfig load_model_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  return parse_model_config(parse_json_unique_keys(read_file(path), path), path);
}

const char* supported_model_types() { return "llama, mistral, qwen2, qwen3, gemma2, gpt2, bert"; }

std::string model_type(const ModelConfig& c) {
  if (const auto* d = std::get_if<DecoderConfig>(&c)) return d->model_type;
  if (std::holds_alternative<Gpt2Config>(c)) return "gpt2";
  return "bert";
}

Json to_json(const ModelConfig& config) {
  Json j;
  if (const auto* q = std::get_if<DecoderConfig>(&config)) {
    static const std::map<std::string, std::string> arch = {{"llama", "LlamaForCausalLM"},
                                                            {"mistral", "MistralForCausalLM"},
                                                            {"qwen2", "Qwen2ForCausalLM"},
                                                            {"qwen3", "Qwen3ForCausalLM"},
                                                            {"gemma2", "Gemma2ForCausalLM"}};
    j["architectures"] = {arch.at(q->model_type)};
    j["model_type"] = q->model_type;
    j["vocab_size"] = q->vocab_size;
    j["hidden_size"] = q->hidden_size;
    j["intermediate_size"] = q->intermediate_size;
    j["num_hidden_layers"] = q->num_hidden_layers;
    j["num_attention_heads"] = q->num_attention_heads;
    j["num_key_value_heads"] = q->num_key_value_heads;
    j["head_dim"] = q->head_dim();
    j["max_position_embeddings"] = q->max_position_embeddings;
    j["rms_norm_eps"] = q->rms_norm_eps;
    j["rope_theta"] = q->rope_theta;
    j["tie_word_embeddings"] = q->tie_word_embeddings;
    j[q->model_type == "gemma2" ? "hidden_activation" : "hidden_act"] = q->hidden_act;
    if (q->model_type == "gemma2") {
      j["query_pre_attn_scalar"] = q->query_pre_attn_scalar;
      j["attn_logit_softcapping"] = q->attn_logit_softcapping > 0 ? Json(q->attn_logit_softcapping) : Json(nullptr);
      j["final_logit_softcapping"] = q->final_logit_softcapping > 0 ? Json(q->final_logit_softcapping) : Json(nullptr);
      j["sliding_window"] = q->sliding_window;
      Json types = Json::array();
      for (bool w : q->sliding) types.push_back(w ? "sliding_attention" : "full_attention");
      j["layer_types"] = types;
    }
    j["initializer_range"] = q->initializer_range;
    if (q->model_type != "qwen2") j["attention_bias"] = q->qkv_bias;
    if (q->model_type == "llama") j["mlp_bias"] = q->mlp_bias;
    // Spelled out so HF loads exactly what fme runs: full attention, the RoPE fme computes.
    if (q->model_type == "qwen2" || q->model_type == "qwen3") j["use_sliding_window"] = false;
    if (q->model_type == "mistral") j["sliding_window"] = nullptr;
    if (q->rope_scaling.type.empty()) {
      j["rope_scaling"] = nullptr;
    } else {
      j["rope_scaling"] = {{"rope_type", q->rope_scaling.type},
                           {"factor", q->rope_scaling.factor},
                           {"low_freq_factor", q->rope_scaling.low_freq_factor},
                           {"high_freq_factor", q->rope_scaling.high_freq_factor},
                           {"original_max_position_embeddings", q->rope_scaling.original_max_position_embeddings}};
    }
  } else if (const auto* g = std::get_if<Gpt2Config>(&config)) {
    j["architectures"] = {"GPT2LMHeadModel"};
    j["model_type"] = "gpt2";
    j["vocab_size"] = g->vocab_size;
    j["n_embd"] = g->hidden_size;
    j["n_inner"] = g->intermediate_size;
    j["n_layer"] = g->num_hidden_layers;
    j["n_head"] = g->num_attention_heads;
    j["n_positions"] = g->max_position_embeddings;
    j["layer_norm_epsilon"] = g->layer_norm_eps;
    j["activation_function"] = g->activation_function;
    j["scale_attn_weights"] = true;
    j["scale_attn_by_inverse_layer_idx"] = g->scale_attn_by_inverse_layer_idx;
    j["tie_word_embeddings"] = g->tie_word_embeddings;
    j["initializer_range"] = g->initializer_range;
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

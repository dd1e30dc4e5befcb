#include "models/bert/config.h"

#include "models/config_keys.h"
#include "util/error.h"

namespace fme {

BertConfig parse_bert_config(const Json& j, const std::string& what) {
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
  c.hidden_dropout_prob = optional<double>(j, "hidden_dropout_prob", 0.1, what);
  c.attention_probs_dropout_prob = optional<double>(j, "attention_probs_dropout_prob", 0.1, what);
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
  check_initializer_range(c.initializer_range, what);
  check_probability(c.hidden_dropout_prob, "hidden_dropout_prob", what);
  check_probability(c.attention_probs_dropout_prob, "attention_probs_dropout_prob", what);
  if (c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size)
    throw ConfigError(what + ": pad_token_id " + std::to_string(c.pad_token_id) + " is outside the vocabulary [0, " +
                      std::to_string(c.vocab_size) + ")");
  check_heads(c.hidden_size, c.num_attention_heads, what);
  return c;
}

Json bert_config_json(const BertConfig& c) {
  Json j;
  j["architectures"] = {c.mlm_head ? "BertForMaskedLM" : "BertModel"};
  j["model_type"] = "bert";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["type_vocab_size"] = c.type_vocab_size;
  j["layer_norm_eps"] = c.layer_norm_eps;
  j["hidden_dropout_prob"] = c.hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = c.attention_probs_dropout_prob;
  j["hidden_act"] = c.hidden_act;
  j["pad_token_id"] = c.pad_token_id;
  j["initializer_range"] = c.initializer_range;
  j["position_embedding_type"] = c.position_embedding_type;
  return j;
}

}  // namespace fme

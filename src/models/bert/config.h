// config.json of BERT (BertModel, BertForMaskedLM): every key that changes the math required.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "util/json.h"

namespace fme {

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
  double hidden_dropout_prob = 0.1, attention_probs_dropout_prob = 0.1;  // training only; HF's defaults
  std::string position_embedding_type = "absolute";  // only "absolute" is supported
  // Not in config.json: whether the model has BertModel's pooler (BertForMaskedLM's encoder has none; the
  // loader sets it from the checkpoint).
  bool pooler = true;
  // Not in config.json either: whether the model has BertForMaskedLM's head, cls.predictions (fitted from the
  // checkpoint; a masked-LM objective adds it). Such a model is saved as BertForMaskedLM.
  bool mlm_head = false;
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

// Parses config.json of model_type "bert"; `what` names the file.
BertConfig parse_bert_config(const Json& j, const std::string& what);
// An HF-compatible config.json of it.
Json bert_config_json(const BertConfig& c);

}  // namespace fme

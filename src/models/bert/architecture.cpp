// BERT's registry row.
#include "models/bert/bert.h"

namespace fme {

const Architecture& bert_architecture() {
  static const Architecture a{
      "bert",
      {"bert"},
      [](const ModelConfig& c, Builder& b) { return make_bert(std::get<BertConfig>(c), b); },
      // BertFor* checkpoints prefix the encoder with "bert." and store their heads ("cls.") as they are; the
      // heads are skipped unless the model has the MLM head, and HF's position_ids buffer always is.
      {{{"", "bert.", "embeddings.LayerNorm.weight", {"cls."}}},
       {"cls."},
       {},
       {"bert.embeddings.position_ids", "embeddings.position_ids"}},
      "builtin:bert-tp",
      [](const ModelConfig& config, int64_t B, int64_t T, int64_t last_block) {
        const auto& c = std::get<BertConfig>(config);
        const double H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim();
        const double linear = 4 * H * H + 2 * H * I;  // q, k, v, attention output; intermediate, output
        const double blocks = last_block < 0 ? c.num_hidden_layers : last_block + 1;
        return double(B) * T * blocks * (2.0 * linear + 4.0 * c.num_attention_heads * hd * T);  // every key visible
      },
      [](ModelConfig& config, const std::function<bool(const std::string&)>& has) {
        // BertForMaskedLM's encoder is built without the pooler (add_pooling_layer=False).
        auto& c = std::get<BertConfig>(config);
        c.pooler = has("pooler.dense.weight") || has("bert.pooler.dense.weight");
        c.mlm_head = has("cls.predictions.transform.dense.weight");  // the whole head (a stray bias alone is skipped)
      },
      "mlm",
      [](ModelConfig& config) -> std::string {
        auto& c = std::get<BertConfig>(config);
        if (c.mlm_head) return "";
        c.mlm_head = true;  // BertModel -> BertForMaskedLM: the head starts from HF's initialisation
        return "cls.";
      }};
  return a;
}

}  // namespace fme

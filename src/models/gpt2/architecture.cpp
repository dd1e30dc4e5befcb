// GPT-2's registry row.
#include "models/gpt2/gpt2.h"

namespace fme {

const Architecture& gpt2_architecture() {
  static const Architecture a{
      "gpt2",
      {"gpt2"},
      [](const ModelConfig& c, Builder& b) { return make_gpt2(std::get<Gpt2Config>(c), b); },
      // Checkpoints saved from GPT2Model (the original OpenAI conversion) lack the "transformer." prefix;
      // older exports store the causal-mask buffers, which fme builds itself.
      {{{"transformer.", "", "transformer.wte.weight", {}}}, {}, {".attn.bias", ".attn.masked_bias"}, {}},
      "builtin:gpt2-tp",
      [](const ModelConfig& config, int64_t B, int64_t T, int64_t last_block) {
        const auto& c = std::get<Gpt2Config>(config);
        const double H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim();
        const double linear = 4 * H * H + 2 * H * I;  // c_attn (q, k, v), c_proj; c_fc, mlp.c_proj
        const double blocks = last_block < 0 ? c.num_hidden_layers : last_block + 1;
        return double(B) * T * blocks * (2.0 * linear + 4.0 * c.num_attention_heads * hd * (T + 1) / 2.0);
      },
      nullptr,    // nothing to fit: the config says it all
      "causal",   // next-token training through the LM head
      nullptr};   // the head is always there (lm_head or the tied embedding)
  return a;
}

}  // namespace fme

// The decoder family's registry row: Llama, Mistral, Qwen2, Qwen3 and Gemma 2 share one block.
#include "models/decoder/decoder.h"

namespace fme {

const Architecture& decoder_architecture() {
  static const Architecture a{
      "decoder",
      {"llama", "mistral", "qwen2", "qwen3", "gemma2"},
      [](const ModelConfig& c, Builder& b) { return make_decoder(std::get<DecoderConfig>(c), b); },
      // Older Llama exports store RoPE's inv_freq buffer; fme computes it from the config.
      {{}, {}, {".rotary_emb.inv_freq"}, {}},
      "builtin:decoder-tp",
      [](const ModelConfig& config, int64_t B, int64_t T, int64_t last_block) {
        const auto& c = std::get<DecoderConfig>(config);
        const double H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim();
        const double q = c.num_attention_heads * hd, kv = c.num_key_value_heads * hd;
        const double linear = H * q * 2 + 2 * H * kv + 3 * H * I;  // q, o; k, v; gate, up, down
        const double visible = (T + 1) / 2.0;                        // causal (sliding windows ignored)
        const double blocks = last_block < 0 ? c.num_hidden_layers : last_block + 1;
        return double(B) * T * blocks * (2.0 * linear + 4.0 * c.num_attention_heads * hd * visible);
      },
      nullptr,    // nothing to fit: the config says it all
      "causal",   // next-token training through the LM head
      nullptr};   // the head is always there (lm_head or the tied embedding)
  return a;
}

}  // namespace fme

#include "models/flops.h"

#include <variant>

namespace fme {

double forward_flops(const ModelConfig& config, int64_t B, int64_t T, int64_t last_block) {
  return std::visit(
      [&](const auto& c) {
        const double H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim();
        const double blocks = last_block < 0 ? c.num_hidden_layers : last_block + 1;
        double linear, visible;
        if constexpr (std::is_same_v<std::decay_t<decltype(c)>, DecoderConfig>) {
          const double q = c.num_attention_heads * hd, kv = c.num_key_value_heads * hd;
          linear = H * q * 2 + 2 * H * kv + 3 * H * I;  // q, o; k, v; gate, up, down
          visible = (T + 1) / 2.0;
        } else if constexpr (std::is_same_v<std::decay_t<decltype(c)>, Gpt2Config>) {
          linear = 4 * H * H + 2 * H * I;  // c_attn (q, k, v), c_proj; c_fc, mlp.c_proj
          visible = (T + 1) / 2.0;         // causal
        } else {
          static_assert(std::is_same_v<std::decay_t<decltype(c)>, BertConfig>);
          linear = 4 * H * H + 2 * H * I;  // q, k, v, attention output; intermediate, output
          visible = T;
        }
        const double attn = 4.0 * c.num_attention_heads * hd * visible;
        return double(B) * T * blocks * (2.0 * linear + attn);
      },
      config);
}

}  // namespace fme

// Cross-entropy over rows of bf16 logits in fp32 registers, one row at a time: what the fused loss
// (loss.cpp) runs instead of widening [rows, vocab] logits to an fp32 copy, log-softmaxing that into a second
// one and walking both again backward (~0.1 s and 0.6 GB per Qwen2.5-0.5B step of 512 tokens, vocab 151936).
// Sums run in 16 fixed lanes: the same bits on every ISA (util/target_clones.h).
#pragma once
#include <cstdint>

namespace fme {

// log(sum_j exp(x_j)) over the n bf16 values x, as max + log(sum_j exp(x_j - max)).
float row_logsumexp(const uint16_t* x, int64_t n);

// The gradient of (lse - x_label) * scale with respect to the row: dx_j = scale * (exp(x_j - lse) - [j == label]),
// rounded to bf16; label < 0 (ignored) gives a zero row.
void row_cross_entropy_grad(const uint16_t* x, int64_t n, float lse, int64_t label, float scale, uint16_t* dx);

}  // namespace fme

// Attention's masked softmax for bf16 training on the CPU, in one pass per row: what
// scores.masked_fill_(!allowed, lowest) followed by softmax computes, without the fill's pass over the scores
// and its backward's second one (ATen 1.13 spent ~2.3 ms on the two fills and ~1.8 ms on the softmax of one
// Qwen2.5-0.5B layer's 14 x 512 x 512 scores here).
#pragma once
#include <ATen/core/Tensor.h>

namespace fme {

// Whether masked_softmax takes these: bf16 contiguous scores [B, nkv, g, tb, kn] on the CPU (kn <= 8192) and
// a bool mask [B or 1, 1, 1, tb or 1, kn].
bool masked_softmax_applies(const at::Tensor& scores, const at::Tensor& allowed);

// Probabilities like scores: a masked key gets 0, and a row with no allowed key the uniform distribution (what
// the fill's lowest value gives). Backward is softmax's own: a masked key's probability is 0, and so is its
// gradient (a row with no allowed key belongs to a padded query, whose gradient is 0 anyway).
at::Tensor masked_softmax(const at::Tensor& scores, const at::Tensor& allowed);

}  // namespace fme

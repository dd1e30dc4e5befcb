// The training objectives' loss, as Hugging Face computes it: cross-entropy of fp32 logits against labels,
// where -100 marks a position that does not count.
//   causal (next token): position t predicts labels[t + 1] (HF shifts the labels inside its loss)
//   mlm (masked LM):     position t predicts labels[t]
// The loss comes back as a sum with its token count, so that micro-batches of a step (and ranks) weight
// every counted token equally: loss = sum over all / count over all.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace fme {

enum class Objective { Causal, MaskedLM };

// "causal" | "mlm"; ConfigError otherwise.
Objective parse_objective(const std::string& name);
const char* objective_name(Objective o);

struct LossSum {
  at::Tensor sum;      // [] fp32: sum of the counted positions' cross-entropy (differentiable)
  int64_t tokens = 0;  // counted positions
};

// logits [B,T,V] (any floating dtype; computed in fp32), labels [B,T] int64 with values in [0, V) or -100.
LossSum cross_entropy_sum(const at::Tensor& logits, const at::Tensor& labels, Objective objective);

}  // namespace fme

// Random initialisation of a model's parameters, as HF's _init_weights: Linear and Embedding weights
// N(0, initializer_range), the padding row of BERT's word embeddings zero, biases 0, norm weights 1 and
// norm biases 0. Each parameter draws from its own generator seeded by (seed, parameter path), so the
// result does not depend on construction order.
#pragma once
#include <cstdint>

#include "models/model.h"

namespace fme {

void init_weights(Model& model, uint64_t seed);
// Only the LoRA adapters (A ~ N(0, initializer_range) by global index, B = 0), for a model loaded from a
// checkpoint that has none.
void init_lora(Model& model, uint64_t seed);

}  // namespace fme

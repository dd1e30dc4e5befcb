// Random initialisation of a model's parameters, as HF's _init_weights: Linear and Embedding weights
// N(0, initializer_range), the padding row of BERT's word embeddings zero, biases 0, norm weights 1 and
// norm biases 0. Weights are drawn by global element index from a counter-based RNG keyed by (seed, path)
// (fill/counter_rng.h): independent of construction order, and a shard holds exactly its slice of the whole.
#pragma once
#include <cstdint>
#include <string>

#include "models/model.h"

namespace fme {

// fresh_memory: the parameters sit in never-touched anonymous pages (prepare's arena), so they already read
// as zero (biases are left alone) and the normal fills batch their page faults (fill/counter_rng.h).
// threads: for the normal fills (0: at::get_num_threads()).
// only_under: when set, only the modules under that path prefix (a head added to a loaded checkpoint: "cls.").
void init_weights(Model& model, uint64_t seed, bool fresh_memory = false, int threads = 0, const std::string& only_under = "");
// Only the LoRA adapters (A ~ N(0, initializer_range) by global index, B = 0), for a model loaded from a
// checkpoint that has none.
void init_lora(Model& model, uint64_t seed);

}  // namespace fme

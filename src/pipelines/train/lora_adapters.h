// A trained model's LoRA adapters (the lora_A / lora_B that --plan lora(r=, alpha=) rules add to Linear and
// Conv1D modules) as Hugging Face PEFT stores them, or folded into the base weights.
//
// PEFT layout (PeftModel.save_pretrained / from_pretrained):
//   adapter_config.json        {"peft_type": "LORA", "r", "lora_alpha", "target_modules", "fan_in_fan_out", ...};
//                              rules of other ranks go into "rank_pattern" / "alpha_pattern" by module path
//   adapter_model.safetensors  base_model.model.<HF module path>.lora_A.weight [r, in], .lora_B.weight [out, r]
#pragma once
#include <map>
#include <string>

#include "models/model.h"

namespace fme {

// How many modules carry an adapter.
int64_t count_lora_modules(Model& model);

// Writes the adapters into `dir` (created if needed); `base_model` names the model they adapt. `whole`, when
// given, holds the adapters whole by module parameter name (gathered from tensor-parallel shards).
void write_peft_adapters(Model& model, const std::string& dir, const std::string& base_model,
                         const std::map<std::string, at::Tensor>* whole = nullptr);

// W += (B A) * alpha / r (transposed for Conv1D's (in, out) weights), then B = 0: the model computes what it
// did, with its adapters spent. The model directory written afterwards holds the merged weights. On a
// tensor-parallel shard too: B A of the local parts is the local part of the whole B A.
// `whole`, when given, holds the parameters gathered whole: the merge is made there instead (its weight
// entries replaced, not modified in place, as they may share the live tensors' memory).
void merge_lora_into_weights(Model& model, std::map<std::string, at::Tensor>* whole = nullptr);

}  // namespace fme

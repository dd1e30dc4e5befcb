// Writing a Hugging Face model directory: config.json, model.safetensors, and the tokenizer files that ship
// with fme (assets/tokenizers/<name>), so that both fme and HF transformers can load it.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "models/model.h"

namespace fme {

// The folder of shipped assets: $FME_ASSETS, else next to the executable (<exe>/../share/fme/assets for an
// install, <exe>/../../assets for a build tree), else the source tree fme was built from.
std::string assets_dir();

// Copies assets/tokenizers/<name> into `dir` (decompressing *.zst).
void write_tokenizer_files(const std::string& name, const std::string& dir);

// Creates `dir` (it must not exist or be empty) holding config.json, model.safetensors in `dtype`, and the
// tokenizer `tokenizer_name` (skipped when empty). LoRA adapters are left out (see train/lora_adapters.h).
// Returns the weights' byte count. `whole`, when given, holds every parameter whole by its module name
// (gathered from a tensor-parallel model's shards) and is written instead of the model's own tensors.
uint64_t write_model_dir(Model& model, const std::string& dir, at::ScalarType dtype, const std::string& tokenizer_name,
                         const std::map<std::string, at::Tensor>* whole = nullptr);

}  // namespace fme

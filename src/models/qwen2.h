// Qwen2 / Qwen2.5 decoder, mirroring Hugging Face transformers'
// src/transformers/models/qwen2/modeling_qwen2.py (Qwen2ForCausalLM, eager attention).
#pragma once
#include <memory>

#include "models/build.h"
#include "models/model.h"

namespace fme {

std::unique_ptr<Model> make_qwen2(const Qwen2Config& config, Builder& builder);

}  // namespace fme

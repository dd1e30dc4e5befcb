// GPT-2, mirroring Hugging Face transformers' modeling_gpt2.py (GPT2LMHeadModel, eager attention).
#pragma once
#include <memory>

#include "models/architecture.h"
#include "models/build.h"
#include "models/model.h"

namespace fme {

std::unique_ptr<Model> make_gpt2(const Gpt2Config& config, Builder& builder);
// Its registry row (architecture.cpp).
const Architecture& gpt2_architecture();

}  // namespace fme

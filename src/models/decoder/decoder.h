// The pre-norm decoder family — Llama (2, 3, 3.1, 3.2, TinyLlama), Mistral (no sliding window), Qwen2 / Qwen2.5
// Qwen3 and Gemma 2 — mirroring Hugging Face transformers' modeling_{llama,mistral,qwen2,qwen3,gemma2}.py (eager
// attention).
// One block for all of them; the variants are DecoderConfig's flags (biases, q/k norm, head_dim, RoPE scaling).
#pragma once
#include <memory>

#include "models/architecture.h"
#include "models/build.h"
#include "models/model.h"

namespace fme {

std::unique_ptr<Model> make_decoder(const DecoderConfig& config, Builder& builder);
// Its registry row (architecture.cpp).
const Architecture& decoder_architecture();

}  // namespace fme

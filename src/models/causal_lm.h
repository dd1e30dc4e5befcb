// HF's *ForCausalLM wrapper, shared by the decoder families: the body under its checkpoint prefix
// (Body's kPrefix: "model", "transformer") and lm_head, absent when tie_word_embeddings (the head is then
// the token embedding). fme extracts hidden states; training computes the logits from lm_head.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <ATen/ATen.h>

#include <string>

#include "models/layers.h"
#include "models/vocab_projection.h"
#include "util/error.h"

namespace fme {

template <class Body>
struct CausalLMImpl : torch::nn::Module {
  template <class Config>
  CausalLMImpl(Builder& b, const Config& c) {
    const std::string prefix = Body::ContainedType::kPrefix;
    body = register_module(prefix, Body(b, prefix, c));
    if (!c.tie_word_embeddings)
      lm_head = register_module("lm_head", Linear(b, "lm_head", c.hidden_size, c.vocab_size, false));
  }
  // h [B,T,H] -> logits [B,T,V]: lm_head, or the tied token embedding `embedding` (V, H). Training needs
  // the head whole: ConfigError naming `model_type` when it is split over a mesh.
  at::Tensor logits(const at::Tensor& h, const EmbeddingImpl& embedding, const std::string& model_type) {
    if ((lm_head && lm_head->par.split != Split::None) || (!lm_head && embedding.par.split != Split::None))
      throw ConfigError(model_type + ": the LM head is split over the mesh; training logits need it whole");
    if (!lm_head) return vocab_logits(h, in_dtype_of(embedding.weight, h));
    if (lm_head->lora_A.defined()) return lm_head(h);  // the adapters' own path (models/layers.h)
    return vocab_logits(h, in_dtype_of(lm_head->weight, h), lm_head->bias.defined() ? in_dtype_of(lm_head->bias, h) : at::Tensor());
  }
  Body body{nullptr};
  Linear lm_head{nullptr};  // (V, H); absent when tied
};

template <class Body>
using CausalLM = torch::nn::ModuleHolder<CausalLMImpl<Body>>;

}  // namespace fme

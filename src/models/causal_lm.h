// HF's *ForCausalLM wrapper, shared by the decoder families: the body under its checkpoint prefix
// (Body's kPrefix: "model", "transformer") and lm_head, absent when tie_word_embeddings (the head is then
// the token embedding). fme extracts hidden states; training computes the logits from lm_head.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "models/layers.h"

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
  Body body{nullptr};
  Linear lm_head{nullptr};  // (V, H); absent when tied
};

template <class Body>
using CausalLM = torch::nn::ModuleHolder<CausalLMImpl<Body>>;

}  // namespace fme

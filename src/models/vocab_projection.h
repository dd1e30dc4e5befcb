// The LM head's projection onto the vocabulary, logits = h W^T (+ b) with W (V, H): the one GEMM whose
// output dimension is the vocabulary (30k-260k rows), where the others are a few thousand wide.
//
// On the CPU in bf16 under autograd, its backward runs over slices of the vocabulary: oneDNN (ATen 1.13's
// bf16 GEMM) ran the whole [N,V] x [V,H] and [V,N] x [N,H] products at 0.77-0.93 of its square-GEMM peak
// here (Qwen2.5-0.5B's 151936 x 896 head on 512 tokens, BERT's 30522 x 768 on 1024) and 16384-row slices at
// 1.01-1.11: ~125 ms of a 3.7 s Qwen2.5-0.5B training step. The forward GEMM ran at peak whole, and fp32
// (OpenBLAS) gained nothing from slices; both, and every other device, run at::linear's own backward.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace fme {

// h [..., H], w (V, H), bias (V) or undefined -> [..., V], in h's dtype (w and bias already cast to it).
// `slice_rows`: the vocabulary rows per backward GEMM (the default is the measured one; tests pass small ones).
at::Tensor vocab_logits(const at::Tensor& h, const at::Tensor& w, const at::Tensor& bias = {}, int64_t slice_rows = 16384);

}  // namespace fme

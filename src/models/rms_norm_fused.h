// RMSNorm for bf16 training on the CPU in one autograd node: y = w * bf16(x * rsqrt(mean(x^2) + eps)), the
// statistics and the whole backward in fp32, each output rounded to bf16 once.
//
// The composite (layers.cpp's RMSNormImpl: a cast to fp32, pow, mean, add, rsqrt, a multiply, a cast back, a
// bf16 multiply by w) is eight ATen ops forward and about twice that backward: 1.19 ms fwd+bwd on a 512 x 896
// bf16 row block against 0.57 ms for this (C++ harness, tcmalloc, 2 threads), 49 times in a Qwen2.5-0.5B step.
// Elsewhere (fp32, CUDA, no grad) the composite runs.
#pragma once
#include <ATen/core/Tensor.h>

namespace fme {

// Whether rms_norm_fused applies: x a contiguous CPU bf16 tensor that requires grad, w a bf16 [x.size(-1)].
bool rms_norm_fusable(const at::Tensor& x, const at::Tensor& w);
// x [..., D] bf16, w [D] bf16: y [..., D] bf16, with autograd to x and w (w's gradient summed over rows in
// fp32, in fixed blocks of rows: the same bits at any thread count).
at::Tensor rms_norm_fused(const at::Tensor& x, const at::Tensor& w, double eps);

}  // namespace fme

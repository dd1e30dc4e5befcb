// Rotary embeddings for bf16 training on the CPU in one autograd node that also lays the heads out first:
// x [B, n, T, hd], the heads-first view (transpose(1, 2)) of a contiguous [B, T, n, hd] projection output,
// becomes x * cos + rotate_half(x) * sin as a contiguous [B, n, T, hd] tensor, with the composite's roundings
// (each product, then the sum), bit for bit; the backward in fp32, rounded once, written straight back in the
// projection's [B, T, n, hd] layout.
//
// The composite (layers.cpp's apply_rope: two slices, a negation, a concatenation, two products and a sum,
// about as many ops again backward) leaves its output in the projection's layout, so attention's head-grouped
// reshape of q copied it again forward and backward. RoPE of q and k and attention, fwd+bwd, for one layer of
// Qwen2.5-0.5B at 1 x 512: 10.2-10.4 ms against 10.5-10.8 ms for the composite here (C++ harness, tcmalloc).
#pragma once
#include <ATen/core/Tensor.h>

namespace fme {

// Whether rope_fused applies: x a bf16 CPU [B, n, T, hd] that requires grad with x.transpose(1, 2)
// contiguous and hd even; cos and sin contiguous bf16 [T, hd] or [B, 1, T, hd].
bool rope_fusable(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
at::Tensor rope_fused(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace fme

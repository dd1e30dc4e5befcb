// ||x||^2 of a gradient, accumulated in double: what a global-norm clip and the training loop's gradient norm
// need (a norm sums thousands of tensors over many processes; fp32 partial sums would lose ~1e-7 relative
// each, and a bf16 gradient's own-dtype norm keeps 3 digits).
#pragma once
#include <ATen/core/Tensor.h>

namespace fme {

// Contiguous fp32 and bf16 tensors on the CPU: one pass over the memory (the squares of widened values, exact
// in double, summed in 8 fixed lanes per block and the blocks and pieces in order: the same bits on every ISA and
// thread count). Anything else: ATen, widened to double piece by piece.
double sum_of_squares(const at::Tensor& x);

}  // namespace fme

// Mixed-precision training's compute copies: the bf16 copy of each fp32 master weight that the forward pass
// multiplies with, kept from step to step instead of cast again at every use.
//
// A cast per use (w.to(bf16) in the forward, its gradient cast back to fp32 in the backward) reads and writes
// every weight twice per step: ~0.25 s of a 4 s Qwen2.5-0.5B step here. With copies, the optimizer writes the
// copy in the same pass that updates the master (OptParam::compute_copy), and the copy collects its gradient
// in bf16 (the GEMM's own output dtype, so nothing is rounded that the cast did not round), which the training
// loop hands to the optimizer as it is or folds into the master's fp32 gradient (train.cpp). The numbers are
// those of the cast per use, bit for bit (over several micro-batches, a tied weight's fp32 parts may be
// summed in another order).
//
// A copy is valid while its master's version counter has not moved since the copy was written; anything
// that writes the master through ATen (a checkpoint restore, SGD, the ATen Adam chain) moves it, and the
// copy is written again at its next use.
#pragma once
#include <ATen/core/Tensor.h>

#include <unordered_map>
#include <vector>

namespace fme {

class ComputeCopies {
 public:
  explicit ComputeCopies(at::ScalarType dtype) : dtype_(dtype) {}
  at::ScalarType dtype() const { return dtype_; }

  // Registers fp32 masters (others are passed over). Each gets its copy at its first use in a scope, so a
  // weight the forward pass never multiplies in this dtype (an untied input embedding) has none. A copy is a
  // leaf that requires grad when its master does: its grad() collects, in the copy's dtype, the gradient of
  // every use of the copy.
  void add(const std::vector<at::Tensor>& masters);
  // The valid copy of a registered master (made, or rewritten when the master changed, first), or undefined.
  at::Tensor find(const at::Tensor& master);
  // The copies made so far of `masters`, aligned with them (undefined: none).
  std::vector<at::Tensor> copies_of(const std::vector<at::Tensor>& masters) const;
  // How many copies exist: a caller holding copies_of() asks it again when this grew.
  size_t made() const { return made_; }

 private:
  struct Entry {
    at::Tensor master, copy;
    int64_t version = -1;  // master's version when copy was written
  };
  at::ScalarType dtype_;
  std::unordered_map<const void*, Entry> entries_;  // by master's TensorImpl
  size_t made_ = 0;
};

// master_grad (fp32) += copy_grad (bf16, widened exactly), the bits of master_grad.add_(copy_grad), in one
// vectorized pass for contiguous CPU tensors: ATen 1.13's mixed-dtype add_ took 49-57 ms here against 30-35 ms
// for the 151936 x 896 tied embedding of Qwen2.5-0.5B, folded at every step.
// Anything else: ATen's add_.
void add_copy_gradient(at::Tensor& master_grad, const at::Tensor& copy_grad);

// While a scope is open on a thread, in_dtype_of(w, x) (layers.h) returns w's compute copy when w is a
// registered master and x is in the copies' dtype.
class ComputeCopyScope {
 public:
  explicit ComputeCopyScope(ComputeCopies* copies);
  ~ComputeCopyScope();
  ComputeCopyScope(const ComputeCopyScope&) = delete;
  ComputeCopyScope& operator=(const ComputeCopyScope&) = delete;
  // The innermost open scope's copies on this thread, or null.
  static ComputeCopies* active();

 private:
  ComputeCopies* outer_;
};

}  // namespace fme

// Training-time dropout at the places HF's modules apply it, reproducible from (seed, step, rank,
// micro-batch): the training loop opens a DropoutScope on its thread for each micro-batch, and every
// dropout() call inside draws its mask from a generator seeded by those four numbers and the call's position
// in the forward pass. Outside a scope (extraction, inference, --dropout 0) dropout() is the identity, so
// model code calls it unconditionally, as HF's does in train mode.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace fme {

class DropoutScope {
 public:
  DropoutScope(uint64_t seed, int64_t step, int64_t rank, int64_t micro_batch);
  ~DropoutScope();
  DropoutScope(const DropoutScope&) = delete;
  DropoutScope& operator=(const DropoutScope&) = delete;

  uint64_t key() const { return key_; }
  int64_t next_site() { return site_++; }

 private:
  uint64_t key_;
  int64_t site_ = 0;
  DropoutScope* outer_;
};

// x with each element zeroed with probability p and the rest scaled by 1 / (1 - p) (torch's inverted
// dropout), inside a DropoutScope; x itself when p == 0 or outside one. Differentiable (the mask is a constant).
// The mask is drawn on the CPU (mt19937 seeded per call) and moved to x's device. `stream` != 0 draws from
// another sequence at the same call site: a tensor-parallel process's own attention heads (the processes of a
// group hold different heads at the same site, and each head needs its own mask).
at::Tensor dropout(const at::Tensor& x, double p, uint64_t stream = 0);

}  // namespace fme

// The collectives of a tensor-parallel layer as autograd sees them (Megatron-LM's conjugate operators), so
// that training runs through split layers with the same model code as extraction.
//
// Convention: an activation that every process of the group holds whole carries, on each, the whole
// gradient; a split activation carries the gradient of its own part. Then
//   copy_to_group     forward: identity            backward: sum over the group (a colwise layer's input:
//                                                  each process's gradient covers only its own outputs)
//   reduce_from_group forward: sum over the group  backward: identity (a rowwise layer's partial outputs)
//   gather_from_group forward: concatenate the parts along the last dim; backward: this process's part
// Without a gradient to compute (extraction, inference, a group of one) each is the plain collective.
// Every process of the group must call them in the same order, forward and backward.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>

#include "models/build.h"

namespace fme {

at::Tensor copy_to_group(const at::Tensor& x, const std::shared_ptr<Collective>& group);
at::Tensor reduce_from_group(const at::Tensor& partial, Collective& group);
at::Tensor gather_from_group(const at::Tensor& part, Collective& group);

}  // namespace fme

#include "models/parallel_ops.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

namespace fme {
namespace {
bool needs_grad(const at::Tensor& x) { return at::GradMode::is_enabled() && x.requires_grad(); }
}  // namespace

at::Tensor copy_to_group(const at::Tensor& x, const std::shared_ptr<Collective>& group) {
  if (!group || group->size() == 1 || !needs_grad(x)) return x;
  // A node of its own (a same-shape view): its hook sees only the gradient that flows through this layer,
  // not that of x's other consumers (the residual path, the sibling projections).
  at::Tensor mine = x.view(x.sizes());
  mine.register_hook([group](const at::Tensor& grad) {
    at::NoGradGuard no_grad;
    at::Tensor sum = grad.clone();
    group->all_reduce_sum(sum);
    return sum;
  });
  return mine;
}

at::Tensor reduce_from_group(const at::Tensor& partial, Collective& group) {
  if (group.size() == 1) return partial;
  // Summed in place, behind autograd's back: the sum's gradient with respect to each partial is the
  // identity, which is what the node that made `partial` already passes on. (No backward reads `partial`
  // itself: it is a GEMM's output.)
  at::NoGradGuard no_grad;
  at::Tensor storage = partial.detach();
  group.all_reduce_sum(storage);
  return partial;
}

at::Tensor gather_from_group(const at::Tensor& part, Collective& group) {
  if (group.size() == 1) return part;
  at::Tensor whole;
  {
    at::NoGradGuard no_grad;
    whole = group.all_gather_last_dim(part.detach().contiguous());
  }
  if (!needs_grad(part)) return whole;
  // The others' parts as constants, this process's part live: cat's backward hands it its slice.
  std::vector<at::Tensor> parts = whole.split(part.size(-1), -1);
  parts[static_cast<size_t>(group.rank())] = part;
  return at::cat(parts, -1);
}

}  // namespace fme

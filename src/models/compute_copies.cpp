#include "models/compute_copies.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

namespace fme {
namespace {
thread_local ComputeCopies* g_active = nullptr;
}  // namespace

void ComputeCopies::add(const std::vector<at::Tensor>& masters) {
  if (dtype_ == at::kFloat) return;
  for (const at::Tensor& m : masters)
    if (m.defined() && m.scalar_type() == at::kFloat) entries_[m.unsafeGetTensorImpl()].master = m;
}

at::Tensor ComputeCopies::find(const at::Tensor& master) {
  const auto it = entries_.find(master.unsafeGetTensorImpl());
  if (it == entries_.end()) return {};
  Entry& e = it->second;
  at::NoGradGuard no_grad;
  if (!e.copy.defined()) {
    e.copy = e.master.detach().to(dtype_).contiguous();
    e.copy.set_requires_grad(e.master.requires_grad());
    ++made_;
  } else if (e.master._version() != e.version) {  // written since through ATen: the copy is stale
    e.copy.detach().copy_(e.master);                // in place: the optimizer holds this tensor
  }
  e.version = e.master._version();
  return e.copy;
}

std::vector<at::Tensor> ComputeCopies::copies_of(const std::vector<at::Tensor>& masters) const {
  std::vector<at::Tensor> out;
  for (const at::Tensor& m : masters) {
    const auto it = m.defined() ? entries_.find(m.unsafeGetTensorImpl()) : entries_.end();
    out.push_back(it == entries_.end() ? at::Tensor() : it->second.copy);
  }
  return out;
}

ComputeCopyScope::ComputeCopyScope(ComputeCopies* copies) : outer_(g_active) { g_active = copies; }
ComputeCopyScope::~ComputeCopyScope() { g_active = outer_; }
ComputeCopies* ComputeCopyScope::active() { return g_active; }

}  // namespace fme

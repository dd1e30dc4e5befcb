#include "models/compute_copies.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cstdint>

#include "models/bf16_data.h"
#include "util/bf16_bits.h"

namespace fme {
namespace {
thread_local ComputeCopies* g_active = nullptr;

FME_TARGET_CLONES void add_widened(float* __restrict acc, const uint16_t* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += bf16_to_float(x[i]);
}
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

void add_copy_gradient(at::Tensor& master_grad, const at::Tensor& copy_grad) {
  if (!(master_grad.device().is_cpu() && copy_grad.device().is_cpu() && master_grad.scalar_type() == at::kFloat &&
        copy_grad.scalar_type() == at::kBFloat16 && master_grad.is_contiguous() && copy_grad.is_contiguous() &&
        master_grad.sizes() == copy_grad.sizes())) {
    master_grad.add_(copy_grad);
    return;
  }
  float* acc = master_grad.data_ptr<float>();
  const uint16_t* x = bf16_data(copy_grad);
  constexpr int64_t kPiece = int64_t(1) << 16;
  at::parallel_for(0, master_grad.numel(), kPiece, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; i += kPiece) add_widened(acc + i, x + i, std::min(kPiece, last - i));
  });
}

}  // namespace fme

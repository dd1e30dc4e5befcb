#include "models/dropout.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "util/splitmix64.h"

namespace fme {
namespace {

thread_local DropoutScope* g_scope = nullptr;

// Consecutive inputs give independent-looking 64-bit seeds.
uint64_t mix(uint64_t x) { return splitmix64(x); }

}  // namespace

DropoutScope::DropoutScope(uint64_t seed, int64_t step, int64_t rank, int64_t micro_batch) : outer_(g_scope) {
  key_ = mix(mix(mix(mix(seed) ^ uint64_t(step)) ^ uint64_t(rank)) ^ uint64_t(micro_batch));
  g_scope = this;
}

DropoutScope::~DropoutScope() { g_scope = outer_; }

at::Tensor dropout(const at::Tensor& x, double p, uint64_t stream) {
  if (p <= 0 || g_scope == nullptr) return x;
  const uint64_t site = mix(g_scope->key() ^ uint64_t(g_scope->next_site()));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(stream == 0 ? site : mix(site ^ mix(stream)));
  const at::Tensor keep = at::empty(x.sizes(), at::TensorOptions().dtype(at::kFloat)).bernoulli_(1.0 - p, gen);  // 1 = kept
  return x * keep.to(x.device(), x.scalar_type()) * (1.0 / (1.0 - p));
}

}  // namespace fme

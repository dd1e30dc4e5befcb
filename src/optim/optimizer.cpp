// Shared machinery of the per-parameter optimizers: selection, the state arena, the chunked update walk.
#include "util/shape.h"
#include "optim/optimizer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "util/error.h"

namespace fme {
namespace {


}  // namespace

void require_hyper(bool ok, const std::string& name, double value, const std::string& range) {
  if (ok) return;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", value);
  throw ConfigError("optimizer hyper-parameter '" + name + "' = " + buf + " is out of range: must be " + range);
}

bool ParamOptimizer::is_selected(const OptParam& p) {
  return p.trainable && p.value.defined() && at::isFloatingType(p.value.scalar_type());
}

ParamOptimizer::ParamOptimizer(std::vector<OptParam> params, Schedule schedule)
    : params_(std::move(params)), schedule_(std::move(schedule)) {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (is_selected(params_[i])) selected_.push_back(i);
  }
}

void ParamOptimizer::allocate_state(const std::vector<std::string>& keys, bool with_step) {
  keys_ = keys;
  with_step_ = with_step;
  const size_t n = selected_.size();
  // Slot layout: [steps] then, per CPU param, one slot per key. Off-CPU params get device zeros instead.
  std::vector<TensorArena::Slot> slots;
  if (with_step && n > 0) slots.push_back({{static_cast<int64_t>(n)}, at::kLong});
  std::vector<std::vector<int64_t>> slot_of(n, std::vector<int64_t>(keys.size(), -1));
  for (size_t k = 0; k < n; ++k) {
    const at::Tensor& v = params_[selected_[k]].value;
    if (!v.device().is_cpu()) continue;
    for (size_t j = 0; j < keys.size(); ++j) {
      slot_of[k][j] = static_cast<int64_t>(slots.size());
      slots.push_back({v.sizes().vec(), at::kFloat});
    }
  }
  arena_ = TensorArena(slots, PageSize::kHuge);  // 2 MiB pages: one fault per 2 MiB of state on first step
  if (with_step && n > 0) steps_ = arena_.tensor(0);
  state_.assign(n, {});
  flat_state_.assign(n, {});
  for (size_t k = 0; k < n; ++k) {
    const at::Tensor& v = params_[selected_[k]].value;
    for (size_t j = 0; j < keys.size(); ++j) {
      at::Tensor t = slot_of[k][j] >= 0
                         ? arena_.tensor(static_cast<size_t>(slot_of[k][j]))
                         : at::zeros(v.sizes(), at::TensorOptions().dtype(at::kFloat).device(v.device()));
      flat_state_[k].push_back(t.view({-1}));
      state_[k].push_back(std::move(t));
    }
  }
}

void ParamOptimizer::set_compute_copies(const std::vector<at::Tensor>& copies) {
  if (copies.size() != params_.size())
    throw ShapeError("optimizer: got " + std::to_string(copies.size()) + " compute copies for " + std::to_string(params_.size()) + " parameters");
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& c = copies[i];
    const at::Tensor& v = params_[i].value;
    if (c.defined() && (c.sizes() != v.sizes() || c.device() != v.device() || !c.is_contiguous()))
      throw ShapeError("optimizer: the compute copy of '" + params_[i].name + "' is " + shape_str(c.sizes()) + " on " + c.device().str() +
                       ", expected a contiguous " + shape_str(v.sizes()) + " on " + v.device().str());
    params_[i].compute_copy = c;
  }
}

int64_t& ParamOptimizer::param_step(size_t k) { return steps_.data_ptr<int64_t>()[k]; }

void ParamOptimizer::set_step_count(int64_t count) {
  if (count < 0) throw ConfigError("optimizer step count must be >= 0, got " + std::to_string(count));
  step_count_ = count;
}

std::vector<std::pair<std::string, at::Tensor>> ParamOptimizer::named_state() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t k = 0; k < selected_.size(); ++k) {
    const std::string& name = params_[selected_[k]].name;
    if (with_step_) out.emplace_back(name + ".step", steps_.select(0, static_cast<int64_t>(k)));
    for (size_t j = 0; j < keys_.size(); ++j) out.emplace_back(name + "." + keys_[j], state_[k][j]);
  }
  return out;
}

void ParamOptimizer::step_scaled(const std::vector<at::Tensor>& grads, double grad_scale) {
  if (grads.size() != params_.size()) {
    throw ShapeError("optimizer step: got " + std::to_string(grads.size()) + " gradients for " +
                     std::to_string(params_.size()) + " parameters (pass an undefined tensor for none)");
  }
  // Check everything before touching anything, so a bad grad list leaves params and state unchanged.
  for (size_t i : selected_) {
    const at::Tensor& g = grads[i];
    if (!g.defined()) continue;
    const at::Tensor& v = params_[i].value;
    if (g.sizes() != v.sizes()) {
      throw ShapeError("optimizer step: gradient of '" + params_[i].name + "' has shape " +
                       shape_str(g.sizes()) + ", expected the local shard's shape " + shape_str(v.sizes()));
    }
    if (g.device() != v.device() || !at::isFloatingType(g.scalar_type())) {
      throw ShapeError("optimizer step: gradient of '" + params_[i].name + "' is " +
                       std::string(c10::toString(g.scalar_type())) + " on " + g.device().str() +
                       ", expected a floating tensor on " + v.device().str());
    }
  }
  c10::InferenceMode guard;  // no autograd bookkeeping for the in-place updates
  const double lr = schedule_(step_count_);
  for (size_t k = 0; k < selected_.size(); ++k) {
    const at::Tensor& g = grads[selected_[k]];
    if (!g.defined()) continue;
    touched_ = true;
    update(k, g, grad_scale, lr);
  }
  ++step_count_;
}

at::Tensor ParamOptimizer::scratch(int which, int64_t n) {
  if (!chunk_device_.is_cpu()) {
    return at::empty({n}, at::TensorOptions().dtype(at::kFloat).device(chunk_device_));
  }
  // One set per thread of the chunk walk (for_each_chunk sized scratch_ before it started).
  return scratch_[static_cast<size_t>(at::get_thread_num() * kScratch + which)].narrow(0, 0, n);
}

at::Tensor ParamOptimizer::effective_grad(const at::Tensor& g, double scale, const at::Tensor& p, double l2) {
  if (g.scalar_type() == at::kFloat && scale == 1.0 && l2 == 0.0) return g;
  at::Tensor s = scratch(kScratchGrad, g.numel());
  s.copy_(g);
  if (scale != 1.0) s.mul_(scale);
  if (l2 != 0.0) s.add_(p, l2);
  return s;
}

void ParamOptimizer::for_each_piece(int64_t numel, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t n_chunks = (numel + kChunk - 1) / kChunk;
  at::parallel_for(0, n_chunks, 1, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) fn(c * kChunk, std::min(kChunk, numel - c * kChunk));
  });
}

void ParamOptimizer::for_each_chunk(size_t k, const at::Tensor& grad, const ChunkFn& fn) {
  const at::Tensor& value = params_[selected_[k]].value;
  chunk_device_ = value.device();
  // Non-contiguous shards (e.g. a column slice) are walked through a contiguous copy written back at the
  // end: one full-size temporary, only for such params.
  const bool contiguous = value.is_contiguous();
  at::Tensor work = contiguous ? value : value.contiguous();
  const at::Tensor pflat = work.view({-1});
  const at::Tensor gflat = grad.contiguous().view({-1});
  const bool fp32 = work.scalar_type() == at::kFloat;
  const int64_t numel = pflat.numel();
  const int64_t chunk = chunk_device_.is_cpu() ? kChunk : std::max<int64_t>(numel, 1);
  const int64_t n_chunks = (numel + chunk - 1) / chunk;
  auto walk = [&](int64_t first, int64_t last) {
    c10::InferenceMode guard;  // thread-local: each worker needs its own
    for (int64_t c = first; c < last; ++c) {
      const int64_t off = c * chunk, n = std::min(chunk, numel - off);
      at::Tensor p = pflat.narrow(0, off, n);
      const at::Tensor g = gflat.narrow(0, off, n);
      if (fp32) {
        fn(p, g, off, n);
      } else {
        at::Tensor p32 = scratch(kScratchParam, n);
        p32.copy_(p);
        fn(p32, g, off, n);
        p.copy_(p32);  // round to the param's dtype once per step
      }
    }
  };
  if (chunk_device_.is_cpu() && n_chunks > 1) {
    // Threads take whole chunks and run each chunk's ops serially: one fork/join per parameter instead of one
    // per op per chunk (each a wake-up of the other cores; on this VM the per-op form made a step 1.5-6x
    // slower with 2 threads than with 1).
    const size_t sets = static_cast<size_t>(at::get_num_threads()) * kScratch;
    while (scratch_.size() < sets) scratch_.push_back(at::empty({kChunk}, at::kFloat));
    at::parallel_for(0, n_chunks, 1, walk);
  } else {
    if (chunk_device_.is_cpu() && scratch_.size() < kScratch)
      for (int i = 0; i < kScratch; ++i) scratch_.push_back(at::empty({kChunk}, at::kFloat));
    walk(0, n_chunks);
  }
  if (!contiguous) value.copy_(work);
}

}  // namespace fme

// The optimizer interface a training loop drives, and the machinery shared by Adam/AdamW/SGD: parameter
// selection, optimizer state carved out of one zero-page arena, and a chunked walk over each parameter so
// the several fused ATen ops of an update run on cache-resident pieces (memory speed, no full-size temps).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "optim/schedule.h"
#include "fill/tensor_arena.h"

namespace fme {

// One parameter as the optimizer sees it. `value` is this process's local shard (fp32 or bf16, any
// device; state arenas are CPU-only, other devices get ordinary zeroed tensors) and is updated in place.
// Params that share storage (tied embeddings) must be listed once.
struct OptParam {
  std::string name;  // e.g. "model.layers.0.self_attn.q_proj.weight"
  at::Tensor value;
  bool trainable = true;
  // True when every process of the mesh holds the same full tensor (norms, biases under tensor
  // parallelism), false when each holds a distinct shard. Only the global-norm clip reads it: see clip.h.
  bool replicated_over_mesh = false;
  // A sharded param on a mesh with more axes than it is sharded over (dp=2,tp=2, sharded over tp): how many
  // processes hold this same shard (2 there). Read by the clip like replica_count is for replicated ones.
  int64_t shard_copies = 1;
  // Mixed precision: the bf16 copy of `value` that the forward pass computes with (models/compute_copies.h),
  // or undefined. An update that writes `value` by raw pointer writes this copy in the same pass, or, when it
  // cannot, bumps value's version counter so that the copy is made again before it is used.
  at::Tensor compute_copy = {};
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update. grads[i] is the gradient of params[i] (same shape as the local shard, fp32 or bf16) or an
  // undefined tensor for "no gradient this step" (the param and its state are then left as they are, as
  // torch does for p.grad == None). Grads of non-selected params are ignored. Throws ShapeError when the
  // list length, a shape or a device does not match.
  virtual void step(const std::vector<at::Tensor>& grads) = 0;
  // Number of step() calls so far (optax's `count`).
  virtual int64_t step_count() const = 0;
  // For resuming from a checkpoint (the schedule continues from here).
  virtual void set_step_count(int64_t count) = 0;
  // Replaces the learning-rate schedule (a trainer that learns the run's length after building the optimizer).
  virtual void set_schedule(Schedule schedule) = 0;
  // The lr the NEXT step() will use: schedule(step_count()). Before the first step that is schedule(0).
  virtual double current_lr() const = 0;
  // Bytes of optimizer state (sum of named_state() tensors' bytes, alignment padding excluded).
  virtual int64_t state_bytes() const = 0;
  // True until a step writes the state: the zero pages have not been touched by the optimizer yet.
  virtual bool state_untouched() const = 0;
  // Gives the params' compute copies (OptParam::compute_copy), aligned with the params (undefined: none).
  virtual void set_compute_copies(const std::vector<at::Tensor>& copies) = 0;
  // Every state tensor, named "<param name>.<torch state key>" (".exp_avg", ".exp_avg_sq", ".step",
  // ".momentum_buffer"), for checkpointing; the tensors are the live state (copy_ into them to restore).
  virtual std::vector<std::pair<std::string, at::Tensor>> named_state() const = 0;
};

// Base of the per-parameter optimizers (Adam, AdamW, SGD). Selected params = trainable floating params;
// state exists for them only, shaped like the local shard, in fp32 even for bf16 params (master-precision
// moments: bf16 has 8 mantissa bits, too few for exp_avg_sq's small increments; the bf16 param itself is
// updated in fp32 and rounded back once per step - there is no separate fp32 master copy of the weights).
class ParamOptimizer : public Optimizer {
 public:
  // Elements per chunk of the update walk: 64 Ki fp32 = 256 KiB per tensor, so param, grad, state and
  // scratch pieces stay in L2 across the update's ops.
  static constexpr int64_t kChunk = int64_t(1) << 16;

  void step(const std::vector<at::Tensor>& grads) override { step_scaled(grads, 1.0); }
  // step() with every gradient multiplied by grad_scale first; how Chain applies a global-norm clip
  // without writing to (or copying) the caller's gradients.
  void step_scaled(const std::vector<at::Tensor>& grads, double grad_scale);

  int64_t step_count() const override { return step_count_; }
  void set_step_count(int64_t count) override;
  void set_schedule(Schedule schedule) override { schedule_ = std::move(schedule); }
  double current_lr() const override { return schedule_(step_count_); }
  int64_t state_bytes() const override { return arena_.payload_bytes(); }
  bool state_untouched() const override { return !touched_; }
  std::vector<std::pair<std::string, at::Tensor>> named_state() const override;
  void set_compute_copies(const std::vector<at::Tensor>& copies) override;

  const std::vector<OptParam>& params() const { return params_; }
  // Indices into params() of the selected params, in order.
  const std::vector<size_t>& selected() const { return selected_; }
  // The single mapping behind the CPU state (mapping_count() == 1 unless there is no state).
  const TensorArena& state_arena() const { return arena_; }
  // trainable and of a floating dtype.
  static bool is_selected(const OptParam& p);

 protected:
  ParamOptimizer(std::vector<OptParam> params, Schedule schedule);

  // Creates the zeroed state: for each selected param one fp32 tensor per key (shaped like the param), and
  // with `with_step` a per-param int64 update counter (key "step", torch's per-param state['step']).
  void allocate_state(const std::vector<std::string>& keys, bool with_step);

  // Applies one update to selected param k (params()[selected()[k]]) with its (defined, checked) grad.
  virtual void update(size_t k, const at::Tensor& grad, double grad_scale, double lr) = 0;

  // Flat fp32 view [numel] of state key j of selected param k (contiguous, like the param's shard).
  const at::Tensor& flat_state(size_t k, size_t j) const { return flat_state_[k][j]; }
  int64_t& param_step(size_t k);

  // Walks param k and its grad in kChunk pieces (one piece off the CPU, where kernels want big launches)
  // and calls fn(p, g, offset, n): p is a [n] fp32 contiguous view of the param (or a scratch copy written
  // back afterwards for bf16 / non-contiguous params), g the [n] contiguous grad piece in its own dtype
  // (see effective_grad). offset/n index the flat_state() views.
  using ChunkFn = std::function<void(const at::Tensor& p, const at::Tensor& g, int64_t offset, int64_t n)>;
  void for_each_chunk(size_t k, const at::Tensor& grad, const ChunkFn& fn);
  // The same walk for kernels on raw pointers: fn(offset, n) for each kChunk piece of [0, numel), pieces
  // spread over the intra-op threads (no tensor views: a view per piece cost more than the update of it).
  static void for_each_piece(int64_t numel, const std::function<void(int64_t offset, int64_t n)>& fn);

  // grad_piece * scale (+ l2 * p) as fp32: the piece itself when it is fp32 and nothing changes it, else a
  // scratch piece. (g + l2 * p is torch's L2 weight decay: grad.add(p, weight_decay).)
  at::Tensor effective_grad(const at::Tensor& g, double scale, const at::Tensor& p, double l2);
  // Scratch fp32 piece [n] number `which` (0..kScratch-1), reused across chunks and steps.
  at::Tensor scratch(int which, int64_t n);
  static constexpr int kScratchParam = 0, kScratchGrad = 1, kScratchTmp = 2, kScratch = 3;

 private:
  std::vector<OptParam> params_;
  std::vector<size_t> selected_;
  Schedule schedule_;
  int64_t step_count_ = 0;
  bool touched_ = false;
  TensorArena arena_;
  std::vector<std::string> keys_;
  bool with_step_ = false;
  at::Tensor steps_;                             // [n_selected] int64, in the arena
  std::vector<std::vector<at::Tensor>> state_;   // [k][j]: shaped like param k
  std::vector<std::vector<at::Tensor>> flat_state_;  // [k][j]: [numel] views of state_
  std::vector<at::Tensor> scratch_;              // (threads x kScratch) x [kChunk] fp32, CPU
  c10::Device chunk_device_ = c10::Device(c10::kCPU);  // device of the param being walked
};

// ConfigError "optimizer hyper-parameter '<name>' = <value> is out of range: must be <range>" unless ok.
void require_hyper(bool ok, const std::string& name, double value, const std::string& range);

}  // namespace fme

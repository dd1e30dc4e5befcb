// Hook points: the activations a forward pass can report, named as TransformerLens names them so that SAELens
// users map them one to one, and the Capture that says which of them a forward should report.
//
// Per block i, in the order a block computes them (pre-norm decoders; BERT's post-norm meanings in bert.cpp):
//   blocks.{i}.hook_resid_pre   [B,T,H]       the block's input (the residual stream before it)
//   blocks.{i}.attn.hook_z      [B,T,nh,hd]   the attention's per-head output, the input of its out projection
//   blocks.{i}.hook_attn_out    [B,T,H]       what attention adds to the residual stream
//   blocks.{i}.hook_resid_mid   [B,T,H]       the residual stream between attention and MLP
//   blocks.{i}.mlp.hook_post    [B,T,I]       the MLP's hidden activation, the input of its down projection
//   blocks.{i}.hook_mlp_out     [B,T,H]       what the MLP adds to the residual stream
//   blocks.{i}.hook_resid_post  [B,T,H]       the block's output
// and per model, e.g. ln_final.hook_normalized [B,T,H] (the final norm's output) or BERT's pooler_output [B,H].
//
// A block reports each point as it computes it (llama.cpp's cb(cur, name, il) manner): capture(layer, point, x).
// Nothing unrequested is copied or gathered, and the forward stops after the deepest block a requested point
// needs.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace fme {

enum class BlockPoint : int { ResidPre, AttnZ, AttnOut, ResidMid, MlpPost, MlpOut, ResidPost };
constexpr int kBlockPoints = 7;

const char* block_point_suffix(BlockPoint p);              // "hook_resid_pre", "attn.hook_z", ...
std::string block_hook_name(int64_t layer, BlockPoint p);  // "blocks.3.hook_resid_pre"

// One point a model can report.
struct HookPoint {
  std::string name;
  std::vector<int64_t> row_shape;  // one token's activation: [H], [I] or [nh, hd]; per sequence: [H]
  int64_t block = -1;              // the deepest block the forward must run to compute it
  bool per_token = true;           // false: one row per sequence ([B, ...], BERT's pooler_output)
  int point = -1;                  // a block point: its BlockPoint; -1 for a model-level point
};

// The pre-norm families' last point: the final norm's output [B,T,H], after all `layers` blocks.
constexpr const char* kLnFinal = "ln_final.hook_normalized";
inline HookPoint ln_final_point(int64_t layers, int64_t hidden) { return {kLnFinal, {hidden}, layers - 1, true}; }

// The seven points of each of `layers` blocks, in forward order.
std::vector<HookPoint> block_hook_points(int64_t layers, int64_t hidden, int64_t intermediate, int64_t heads,
                                         int64_t head_dim);

// Called with a requested point's name and activation [B,T,...] as the forward computes it. The tensor is the
// model's own: keeping a view is safe, as a model never writes into a tensor after reporting it.
using CaptureFn = std::function<void(const std::string& name, const at::Tensor& x)>;

class Capture {
 public:
  // Nothing requested: the forward runs every block and reports nothing.
  Capture() = default;
  // The points `names` (each one of `available`'s, else ConfigError), delivered to `fn`.
  Capture(const std::vector<HookPoint>& available, const std::vector<std::string>& names, CaptureFn fn);
  // Every point of `available`.
  static Capture all(const std::vector<HookPoint>& available, CaptureFn fn);

  bool wants(int64_t layer, BlockPoint p) const {
    return layer < static_cast<int64_t>(blocks_.size()) && (blocks_[layer] >> static_cast<int>(p) & 1);
  }
  bool wants(const std::string& name) const { return others_.count(name) > 0; }
  void operator()(int64_t layer, BlockPoint p, const at::Tensor& x) const {
    if (wants(layer, p)) fn_(block_hook_name(layer, p), x);
  }
  void operator()(const std::string& name, const at::Tensor& x) const {
    if (wants(name)) fn_(name, x);
  }
  // The deepest block to run: that of the deepest requested point, or `num_layers - 1` when none is requested.
  int64_t last_block(int64_t num_layers) const { return last_block_ < 0 ? num_layers - 1 : last_block_; }
  bool empty() const { return last_block_ < 0; }

 private:
  std::vector<uint32_t> blocks_;   // per block, bit p = BlockPoint p requested
  std::set<std::string> others_;   // model-level points requested
  int64_t last_block_ = -1;
  CaptureFn fn_;
};

// The capture of one block: what its modules see.
struct BlockCapture {
  const Capture& capture;
  int64_t layer;
  bool wants(BlockPoint p) const { return capture.wants(layer, p); }
  void operator()(BlockPoint p, const at::Tensor& x) const { capture(layer, p, x); }
};

}  // namespace fme

#include "models/masked_softmax.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "models/bf16_data.h"
#include "util/bf16_bits.h"
#include "util/exp_clamped.h"
#include "util/lanes.h"

namespace fme {
namespace {

constexpr int64_t kMaxRow = 8192;  // keys per row the stack buffer holds; longer rows take ATen's path

// One row: probabilities of the allowed keys, rounded to bf16 once.
FME_TARGET_CLONES void softmax_row(const uint16_t* x, const bool* allowed, int64_t n, uint16_t* out) {
  alignas(64) float buf[kMaxRow + kLanes];
  const int64_t padded = lane_padded(n);
  // The mask read as bytes: GCC vectorizes no loop that loads a bool, and kept this one scalar (more than half
  // of the function's time here).
  const auto* keep = reinterpret_cast<const uint8_t*>(allowed);
  for (int64_t i = 0; i < n; ++i) {
    const float v = bf16_to_float(x[i]);
    buf[i] = keep[i] != 0 ? v : -INFINITY;
  }
  for (int64_t i = n; i < padded; ++i) buf[i] = -INFINITY;
  float acc[kLanes];
  for (float& a : acc) a = -INFINITY;
  lanes_max(acc, buf, padded);
  const float max = max_of_lanes(acc);
  if (max == -INFINITY) {  // no allowed key: the fill made every score equal
    const uint16_t u = float_to_bf16(1.0f / static_cast<float>(n));
    for (int64_t i = 0; i < n; ++i) out[i] = u;
    return;
  }
  for (int64_t i = 0; i < padded; ++i) buf[i] = exp_nonpositive(buf[i] - max);  // masked keys (-inf): exactly 0
  float sums[kLanes] = {};
  lanes_add(sums, buf, padded);
  const float sum = sum_of_lanes(sums);
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) out[i] = float_to_bf16(buf[i] * inv);
}

struct MaskedSoftmaxFn : public torch::autograd::Function<MaskedSoftmaxFn> {
  // mask: [Bm, tb, kn] bool contiguous, Bm 1 or scores' first dim.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& scores, const at::Tensor& mask) {
    const int64_t kn = scores.size(-1), tb = scores.size(-2), B = scores.size(0);
    const int64_t rows = scores.numel() / kn, per_batch = rows / B;  // per_batch = heads x tb
    at::Tensor probs = at::empty_like(scores);
    const uint16_t* x = bf16_data(scores);
    uint16_t* out = bf16_data(probs);
    const bool* m = mask.data_ptr<bool>();
    const bool per_b = mask.size(0) > 1;
    at::parallel_for(0, rows, 16, [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r) {
        const int64_t b = r / per_batch, t = r % tb;
        softmax_row(x + r * kn, m + ((per_b ? b : 0) * tb + t) * kn, kn, out + r * kn);
      }
    });
    ctx->save_for_backward({probs});
    return probs;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const at::Tensor probs = ctx->get_saved_variables()[0];
    return {at::_softmax_backward_data(grads[0].contiguous(), probs, -1, probs.scalar_type()), at::Tensor()};
  }
};

}  // namespace

bool masked_softmax_applies(const at::Tensor& scores, const at::Tensor& allowed) {
  return scores.device().is_cpu() && scores.scalar_type() == at::kBFloat16 && scores.is_contiguous() && scores.dim() == 5 &&
         allowed.dim() == 5 && allowed.scalar_type() == at::kBool && scores.size(-1) <= kMaxRow &&
         (allowed.size(0) == 1 || allowed.size(0) == scores.size(0)) && allowed.size(1) == 1 && allowed.size(2) == 1;
}

at::Tensor masked_softmax(const at::Tensor& scores, const at::Tensor& allowed) {
  const int64_t kn = scores.size(-1), tb = scores.size(-2), Bm = allowed.size(0);
  const at::Tensor mask = allowed.expand({Bm, 1, 1, tb, kn}).reshape({Bm, tb, kn}).contiguous();  // heads broadcast
  return MaskedSoftmaxFn::apply(scores, mask);
}

}  // namespace fme

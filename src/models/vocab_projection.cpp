#include "models/vocab_projection.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace fme {
namespace {

struct VocabLogitsFn : public torch::autograd::Function<VocabLogitsFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& h, const at::Tensor& w, int64_t slice_rows) {
    ctx->save_for_backward({h, w});
    ctx->saved_data["slice_rows"] = slice_rows;
    return at::linear(h, w);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& h = saved[0];
    const at::Tensor& w = saved[1];
    const int64_t V = w.size(0), H = w.size(1), slice = ctx->saved_data["slice_rows"].toInt();
    const at::Tensor g = grads[0].reshape({-1, V}).contiguous();  // [N, V]
    const at::Tensor x = h.reshape({-1, H});                      // [N, H]
    at::Tensor dh, dw;
    if (ctx->needs_input_grad(0)) {
      // dh = sum over slices of g[:, s] w[s]: each slice's product rounded to bf16 as the GEMM returns it,
      // the sum in fp32 and rounded once more.
      at::Tensor acc;  // [N, H] fp32
      for (int64_t r = 0; r < V; r += slice) {
        const int64_t n = std::min(slice, V - r);
        const at::Tensor part = at::mm(g.narrow(1, r, n), w.narrow(0, r, n));
        if (acc.defined()) acc.add_(part);
        else acc = part.to(at::kFloat);
      }
      dh = acc.to(h.scalar_type()).view(h.sizes());
    }
    if (ctx->needs_input_grad(1)) {
      dw = at::empty_like(w, at::MemoryFormat::Contiguous);  // [V, H]: each slice's rows written in place
      const at::Tensor gt = g.t();
      for (int64_t r = 0; r < V; r += slice) {
        const int64_t n = std::min(slice, V - r);
        at::Tensor rows = dw.narrow(0, r, n);
        at::mm_out(rows, gt.narrow(0, r, n), x);
      }
    }
    return {dh, dw, at::Tensor()};
  }
};

bool sliced(const at::Tensor& h, const at::Tensor& w, const at::Tensor& bias, int64_t slice_rows) {
  const bool grad = at::GradMode::is_enabled() && (h.requires_grad() || w.requires_grad() || (bias.defined() && bias.requires_grad()));
  return grad && h.device().is_cpu() && h.scalar_type() == at::kBFloat16 && w.scalar_type() == at::kBFloat16 && w.dim() == 2 &&
         w.size(0) > slice_rows && h.size(-1) == w.size(1) && (!bias.defined() || bias.scalar_type() == at::kBFloat16);
}

}  // namespace

at::Tensor vocab_logits(const at::Tensor& h, const at::Tensor& w, const at::Tensor& bias, int64_t slice_rows) {
  if (slice_rows <= 0 || !sliced(h, w, bias, slice_rows)) return at::linear(h, w, bias);
  at::Tensor y = VocabLogitsFn::apply(h, w, slice_rows);
  if (bias.defined()) y.add_(bias);  // as addmm does: a pass over the logits either way
  return y;
}

}  // namespace fme

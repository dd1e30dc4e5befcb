#include "models/rope_fused.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "models/bf16_data.h"
#include "util/bf16_bits.h"
#include "util/target_clones.h"

namespace fme {
namespace {

FME_INLINE float product(uint16_t a, uint16_t b) { return bf16_to_float(float_to_bf16(bf16_to_float(a) * bf16_to_float(b))); }

// One head's row: y = bf16(bf16(x * c) + bf16(rotate_half(x) * s)), rotate_half(x) = [-x2, x1].
FME_TARGET_CLONES void rotate_row(const uint16_t* x, const uint16_t* c, const uint16_t* s, uint16_t* y, int64_t half) {
  for (int64_t i = 0; i < half; ++i) y[i] = float_to_bf16(product(x[i], c[i]) - product(x[half + i], s[i]));
  for (int64_t i = 0; i < half; ++i) y[half + i] = float_to_bf16(product(x[half + i], c[half + i]) + product(x[i], s[half + i]));
}

// Its transpose: dx = dy * c + rotate_half^T(dy * s), rotate_half^T(z) = [z2, -z1]; fp32, rounded once.
FME_TARGET_CLONES void rotate_row_back(const uint16_t* dy, const uint16_t* c, const uint16_t* s, uint16_t* dx, int64_t half) {
  for (int64_t i = 0; i < half; ++i)
    dx[i] = float_to_bf16(bf16_to_float(dy[i]) * bf16_to_float(c[i]) + bf16_to_float(dy[half + i]) * bf16_to_float(s[half + i]));
  for (int64_t i = 0; i < half; ++i)
    dx[half + i] = float_to_bf16(bf16_to_float(dy[half + i]) * bf16_to_float(c[half + i]) - bf16_to_float(dy[i]) * bf16_to_float(s[i]));
}

struct Shape {
  int64_t B, n, T, hd;
  bool per_batch;  // cos/sin [B, 1, T, hd] (positions per row), else [T, hd]
  int64_t table_row(int64_t b, int64_t t) const { return per_batch ? b * T + t : t; }
};

// x (or its gradient) [B, n, T, hd].
Shape shape_of(const at::Tensor& x, const at::Tensor& cos) {
  return {x.size(0), x.size(1), x.size(2), x.size(3), cos.dim() == 4};
}

struct RopeFn : public torch::autograd::Function<RopeFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
    const Shape sh = shape_of(x, cos);
    const at::Tensor src = x.transpose(1, 2);  // [B, T, n, hd], contiguous
    at::Tensor y = at::empty({sh.B, sh.n, sh.T, sh.hd}, x.options());
    const uint16_t *px = bf16_data(src), *pc = bf16_data(cos), *ps = bf16_data(sin);
    uint16_t* py = bf16_data(y);
    at::parallel_for(0, sh.B * sh.T, 16, [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r) {  // r = b * T + t
        const int64_t b = r / sh.T, t = r % sh.T, tr = sh.table_row(b, t) * sh.hd;
        for (int64_t h = 0; h < sh.n; ++h)
          rotate_row(px + (r * sh.n + h) * sh.hd, pc + tr, ps + tr, py + ((b * sh.n + h) * sh.T + t) * sh.hd, sh.hd / 2);
      }
    });
    ctx->save_for_backward({cos, sin});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &cos = saved[0], &sin = saved[1];
    const at::Tensor dy = grads[0].to(at::kBFloat16).contiguous();  // [B, n, T, hd]
    const Shape sh = shape_of(dy, cos);
    at::Tensor dx = at::empty({sh.B, sh.T, sh.n, sh.hd}, dy.options());  // the projection's layout
    const uint16_t *pdy = bf16_data(dy), *pc = bf16_data(cos), *ps = bf16_data(sin);
    uint16_t* pdx = bf16_data(dx);
    at::parallel_for(0, sh.B * sh.T, 16, [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r) {
        const int64_t b = r / sh.T, t = r % sh.T, tr = sh.table_row(b, t) * sh.hd;
        for (int64_t h = 0; h < sh.n; ++h)
          rotate_row_back(pdy + ((b * sh.n + h) * sh.T + t) * sh.hd, pc + tr, ps + tr, pdx + (r * sh.n + h) * sh.hd, sh.hd / 2);
      }
    });
    return {dx.transpose(1, 2), at::Tensor(), at::Tensor()};
  }
};

bool table_fits(const at::Tensor& c, const at::Tensor& x) {
  if (!c.device().is_cpu() || c.scalar_type() != at::kBFloat16 || !c.is_contiguous() || c.requires_grad()) return false;
  if (c.dim() == 2) return c.size(0) == x.size(2) && c.size(1) == x.size(3);
  return c.dim() == 4 && c.size(0) == x.size(0) && c.size(1) == 1 && c.size(2) == x.size(2) && c.size(3) == x.size(3);
}

}  // namespace

bool rope_fusable(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return x.requires_grad() && x.dim() == 4 && x.device().is_cpu() && x.scalar_type() == at::kBFloat16 && x.size(3) % 2 == 0 &&
         x.transpose(1, 2).is_contiguous() && table_fits(cos, x) && table_fits(sin, x) && cos.sizes() == sin.sizes();
}

at::Tensor rope_fused(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) { return RopeFn::apply(x, cos, sin); }

}  // namespace fme

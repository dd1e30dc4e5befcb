#include "optim/sum_squares.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "util/bf16_bits.h"

namespace fme {
namespace {

constexpr int64_t kPiece = int64_t(1) << 16;

FME_INLINE double widen(float x) { return x; }
FME_INLINE double widen(uint16_t x) { return bf16_to_float(x); }

// Eight independent lanes: one AVX-512 vector or two AVX2 ones, with the same additions in the same order
// either way (built with -ffp-contract=off: no clone fuses them differently).
template <typename T>
FME_INLINE double squares(const T* __restrict x, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) {
      const double d = widen(x[i + j]);
      acc[j] += d * d;
    }
  for (int j = 0; i < n; ++i, ++j) {
    const double d = widen(x[i]);
    acc[j] += d * d;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

FME_TARGET_CLONES double squares_f32(const float* x, int64_t n) { return squares(x, n); }
// Widened to fp32 (exact) a block at a time first: one loop from 16-bit lanes to doubles vectorized poorly.
FME_TARGET_CLONES double squares_bf16(const uint16_t* x, int64_t n) {
  constexpr int64_t kBlock = 1024;  // a multiple of the 8 lanes: the lanes stay those of one long loop
  alignas(64) float buf[kBlock];
  double total = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t b = n - i0 < kBlock ? n - i0 : kBlock;
    for (int64_t i = 0; i < b; ++i) buf[i] = bf16_to_float(x[i0 + i]);
    total += squares(buf, b);
  }
  return total;
}

template <typename T>
double pieces(const T* x, int64_t numel, double (*piece)(const T*, int64_t)) {
  std::vector<double> sums(static_cast<size_t>((numel + kPiece - 1) / kPiece));
  at::parallel_for(0, static_cast<int64_t>(sums.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) sums[static_cast<size_t>(c)] = piece(x + c * kPiece, std::min(kPiece, numel - c * kPiece));
  });
  double total = 0;
  for (double s : sums) total += s;
  return total;
}

}  // namespace

double sum_of_squares(const at::Tensor& x) {
  if (x.numel() == 0) return 0.0;
  if (x.device().is_cpu() && x.is_contiguous()) {
    if (x.scalar_type() == at::kFloat) return pieces(x.data_ptr<float>(), x.numel(), squares_f32);
    if (x.scalar_type() == at::kBFloat16)
      return pieces(reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>()), x.numel(), squares_bf16);
  }
  const at::Tensor flat = x.contiguous().view({-1});
  constexpr int64_t kWiden = int64_t(1) << 20;  // elements widened at a time: no full-size double copy
  double total = 0.0;
  for (int64_t off = 0; off < flat.numel(); off += kWiden) {
    const at::Tensor d = flat.narrow(0, off, std::min(kWiden, flat.numel() - off)).to(at::kDouble);
    total += at::dot(d, d).item<double>();
  }
  return total;
}

}  // namespace fme

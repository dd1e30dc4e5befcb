#include "optim/adam_kernel.h"

#include <cmath>

namespace fme {

#if defined(__x86_64__) && defined(__GNUC__)
#define FME_ADAM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FME_ADAM_CLONES
#endif

// Plain scalar code the compiler vectorizes once per clone. Each line is one of the ATen chain's ops, in its
// order. Built with -ffp-contract=off (no clone fuses a multiply and an add the chain rounds separately) and
// -fno-math-errno (else sqrt keeps the loop scalar): src/optim/CMakeLists.txt.
FME_ADAM_CLONES void adam_update_fp32(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                                      int64_t n, const AdamCoeffs& coeffs) {
  const AdamCoeffs c = coeffs;  // by value: the loads leave the loop
  for (int64_t i = 0; i < n; ++i) {
    const float pi = p[i] * c.decay;
    const float gs = g[i] * c.grad_scale;
    const float gi = c.l2 != 0 ? gs + c.l2 * pi : gs;  // as the chain, which adds no 0 * p (an inf p stays out)
    const float mi = m[i] + c.one_minus_beta1 * (gi - m[i]);
    const float vi = v[i] * c.beta2 + (c.one_minus_beta2 * gi) * gi;
    const float denom = std::sqrt(vi) / c.sqrt_bc2 + c.eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + c.neg_step_size * (mi / denom);
  }
}

}  // namespace fme

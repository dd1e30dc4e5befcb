// The AVX2 + AES-NI build of the counter_rng kernel (compiled with -mavx2 -mfma -maes -ffp-contract=off): the
// AVX2 kernel of counter_rng_kernel.h with AES on xmm registers (16 blocks interleaved) and the transform 8
// pairs a ymm. For x86-64 CPUs with AVX2 but without VAES (Haswell to Skylake, Zen 1-2); only called after a
// runtime CPU check in counter_rng.cpp. Bit-identical to the other builds (same IEEE operations in the same order).
#include "fill/counter_rng.h"
#include "fill/counter_rng_kernel.h"

namespace fme::rng_detail {

void normal_span_aesni(float* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std) {
  rng_kernel::normal_span(out, n, e0, key, mean, std);
}
void normal_span_bf16_aesni(uint16_t* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std) {
  rng_kernel::normal_span(out, n, e0, key, mean, std);
}

}  // namespace fme::rng_detail

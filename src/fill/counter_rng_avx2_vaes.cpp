// The AVX2 + VAES build of the counter_rng kernel (compiled with -mavx2 -mfma -maes -mvaes -ffp-contract=off):
// the AVX2 kernel of counter_rng_kernel.h with AES on ymm registers, two blocks each. For x86-64 CPUs with
// VAES but without AVX-512 (Zen 3, Alder Lake and later client cores); only called after a runtime CPU check
// in counter_rng.cpp. Bit-identical to the other builds.
#include "fill/counter_rng.h"
#include "fill/counter_rng_kernel.h"

namespace fme::rng_detail {

void normal_span_avx2_vaes(float* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std) {
  rng_kernel::normal_span(out, n, e0, key, mean, std);
}
void normal_span_bf16_avx2_vaes(uint16_t* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std) {
  rng_kernel::normal_span(out, n, e0, key, mean, std);
}

}  // namespace fme::rng_detail

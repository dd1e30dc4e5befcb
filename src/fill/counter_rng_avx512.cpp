// The AVX-512 build of the counter_rng kernel (compiled with -mavx512f/dq/vl/bw -maes -mvaes -ffp-contract=off). Only
// called after a runtime CPU check in counter_rng.cpp. Leaves out everything but the span entry points: the
// kernel itself is in counter_rng_kernel.h, shared verbatim with the portable build so both are bit-identical.
#include "fill/counter_rng.h"

// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized on its own _mm512_undefined_* placeholders.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "fill/counter_rng_kernel.h"

namespace fme::rng_detail {

void normal_span_avx512(float* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std) {
  rng_kernel::normal_span(out, n, e0, key, mean, std);
}
void normal_span_bf16_avx512(uint16_t* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std) {
  rng_kernel::normal_span(out, n, e0, key, mean, std);
}

}  // namespace fme::rng_detail
#pragma GCC diagnostic pop

// Internal to util/counter_rng: the Philox4x32-10 + Box-Muller kernel, written once and compiled twice
// (counter_rng.cpp portably, counter_rng_avx512.cpp with AVX-512 flags). Not a public header.
// Everything here has internal linkage (anonymous namespace) on purpose: the two translation units are built
// with different -m flags, and an inline function with external linkage would let the linker keep the AVX-512
// copy for the portable caller. Both TUs are compiled with -ffp-contract=off -fno-math-errno and no fast-math,
// so the scalar and the vector code perform the same IEEE-754 float operations in the same order and give
// bit-identical results. Leaves out threading and the 2-D addressing (counter_rng.cpp does those).
#pragma once
#include <cstdint>
#include <cstring>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace fme {
namespace {
namespace rng_kernel {

// Philox4x32 constants (Salmon et al. 2011; Random123 philox.h).
constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

// Blocks generated per chunk: 32 counters -> 128 normals (a multiple of 16, the uint32 lanes of a zmm).
constexpr int kLanes = 32;
constexpr int kChunk = 4 * kLanes;

// One Philox4x32 round on kLanes independent counters (structure-of-arrays so the lane loop vectorises).
inline void philox_round(uint32_t* __restrict c0, uint32_t* __restrict c1, uint32_t* __restrict c2,
                         uint32_t* __restrict c3, uint32_t k0, uint32_t k1) {
  for (int l = 0; l < kLanes; ++l) {
    const uint64_t p0 = uint64_t{kPhiloxM0} * c0[l];
    const uint64_t p1 = uint64_t{kPhiloxM1} * c2[l];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    const uint32_t n0 = hi1 ^ c1[l] ^ k0;
    const uint32_t n2 = hi0 ^ c3[l] ^ k1;
    c0[l] = n0;
    c1[l] = lo1;
    c2[l] = n2;
    c3[l] = lo0;
  }
}

// Philox4x32-10 on the counters {lo32(b+l), hi32(b+l), 0, 0} for l in [0, kLanes), key {lo32(key), hi32(key)}.
inline void philox_chunk_generic(uint64_t b, uint64_t key, uint32_t* __restrict x0, uint32_t* __restrict x1,
                         uint32_t* __restrict x2, uint32_t* __restrict x3) {
  for (int l = 0; l < kLanes; ++l) {
    const uint64_t bl = b + static_cast<uint64_t>(l);
    x0[l] = static_cast<uint32_t>(bl);
    x1[l] = static_cast<uint32_t>(bl >> 32);
    x2[l] = 0;
    x3[l] = 0;
  }
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r) {
    philox_round(x0, x1, x2, x3, k0, k1);
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
}

#if defined(__AVX512F__)
// The same Philox on 8 blocks per zmm, one block per 64-bit lane holding its 32-bit word in the low half.
// vpmuludq reads only the low 32 bits of each lane, so the high halves may carry garbage between rounds and
// the 32x32->64 product needs no masking or shuffles: hi = p >> 32, lo = low half of p. GCC's auto-vectoriser
// instead widens with vpmovzxdq + vpmullq + vpermt2d, about 2.5x the instructions. Integer-exact, so it
// cannot differ from philox_chunk_generic.
inline void philox_chunk(uint64_t b, uint64_t key, uint32_t* __restrict x0, uint32_t* __restrict x1,
                         uint32_t* __restrict x2, uint32_t* __restrict x3) {
  constexpr int kV = kLanes / 8;  // independent zmm chains: more in flight hides the multiply latency
  __m512i c0[kV], c1[kV], c2[kV], c3[kV];
  const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  for (int v = 0; v < kV; ++v) {
    const __m512i bl = _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(b + 8 * v)), lane);
    c0[v] = bl;
    c1[v] = _mm512_srli_epi64(bl, 32);
    c2[v] = _mm512_setzero_si512();
    c3[v] = c2[v];
  }
  const __m512i m0 = _mm512_set1_epi64(kPhiloxM0), m1 = _mm512_set1_epi64(kPhiloxM1);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r) {
    const __m512i vk0 = _mm512_set1_epi64(k0), vk1 = _mm512_set1_epi64(k1);
    for (int v = 0; v < kV; ++v) {
      const __m512i p0 = _mm512_mul_epu32(c0[v], m0), p1 = _mm512_mul_epu32(c2[v], m1);
      // 0x96 = a ^ b ^ c
      c0[v] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), c1[v], vk0, 0x96);
      c2[v] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), c3[v], vk1, 0x96);
      c1[v] = p1;
      c3[v] = p0;
    }
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  // Low halves of two vectors' lanes -> 16 uint32.
  const __m512i lo_idx = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  for (int v = 0; v < kV; v += 2) {
    _mm512_store_si512(x0 + 8 * v, _mm512_permutex2var_epi32(c0[v], lo_idx, c0[v + 1]));
    _mm512_store_si512(x1 + 8 * v, _mm512_permutex2var_epi32(c1[v], lo_idx, c1[v + 1]));
    _mm512_store_si512(x2 + 8 * v, _mm512_permutex2var_epi32(c2[v], lo_idx, c2[v + 1]));
    _mm512_store_si512(x3 + 8 * v, _mm512_permutex2var_epi32(c3[v], lo_idx, c3[v + 1]));
  }
}
#else
inline void philox_chunk(uint64_t b, uint64_t key, uint32_t* __restrict x0, uint32_t* __restrict x1,
                         uint32_t* __restrict x2, uint32_t* __restrict x3) {
  philox_chunk_generic(b, key, x0, x1, x2, x3);
}
#endif

inline uint32_t f2u(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float u2f(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Natural log for x in [2^-24, 1), the Cephes logf scheme: x = m * 2^e with m in [sqrt(1/2), sqrt(2)),
// log(m) by a degree-9 polynomial in (m - 1) (m - 1 is exact by Sterbenz), log(2)*e split in two parts.
// Measured max error over the whole input set (test_counter_rng.cpp): see LogApproxMatchesStd.
inline float log_unit(float x) {
  const uint32_t bits = f2u(x);
  int32_t e = static_cast<int32_t>(bits >> 23) - 126;      // x = m * 2^e, m in [0.5, 1)
  float m = u2f((bits & 0x007FFFFFu) | 0x3F000000u);
  const bool small = m < 0.70710678118654752440f;
  e = small ? e - 1 : e;
  m = small ? m + m : m;
  const float t = m - 1.0f;
  const float z = t * t;
  float y = 7.0376836292e-2f;
  y = y * t + -1.1514610310e-1f;
  y = y * t + 1.1676998740e-1f;
  y = y * t + -1.2420140846e-1f;
  y = y * t + 1.4249322787e-1f;
  y = y * t + -1.6668057665e-1f;
  y = y * t + 2.0000714765e-1f;
  y = y * t + -2.4999993993e-1f;
  y = y * t + 3.3333331174e-1f;
  y = y * t * z;
  const float fe = static_cast<float>(e);
  y = y + -2.12194440e-4f * fe;
  y = y + -0.5f * z;
  float r = t + y;
  r = r + 0.693359375f * fe;
  return r;
}

// cos and sin of theta = 2*pi*(t + 0.5)/2^24, t in [0, 2^24): the quadrant k and the remainder
// phi in (-pi/4, pi/4) come exactly from integer arithmetic, then Cephes sinf/cosf polynomials of phi.
inline void sincos_turn24(uint32_t t, float& cos_out, float& sin_out) {
  const uint32_t s = (t + (1u << 21)) & 0x00FFFFFFu;
  const uint32_t k = s >> 22;
  const int32_t twice_rem = static_cast<int32_t>(((s & 0x003FFFFFu) << 1) | 1u) - (1 << 22);  // 2*rem, odd
  // (pi/2) / 2^23: twice_rem has |value| < 2^22, exact as float; one rounding in the product.
  const float phi = static_cast<float>(twice_rem) * 1.8725351414619643e-7f;
  const float z = phi * phi;
  float sp = -1.9515295891e-4f;
  sp = sp * z + 8.3321608736e-3f;
  sp = sp * z + -1.6666654611e-1f;
  sp = sp * z * phi + phi;
  float cp = 2.443315711809948e-5f;
  cp = cp * z + -1.388731625493765e-3f;
  cp = cp * z + 4.166664568298827e-2f;
  cp = cp * z * z - 0.5f * z + 1.0f;
  const bool swap = (k & 1u) != 0;
  const float c = swap ? sp : cp;
  const float sn = swap ? cp : sp;
  // cos(k*pi/2 + phi) is negative-signed for k in {1, 2}; sin for k in {2, 3}.
  const uint32_t csign = ((k + 1u) & 2u) << 30;
  const uint32_t ssign = (k & 2u) << 30;
  cos_out = u2f(f2u(c) ^ csign);
  sin_out = u2f(f2u(sn) ^ ssign);
}

// Box-Muller on kChunk/2 pairs: u_bits[p] gives the radius, t_bits[p] the angle (definition in counter_rng.h).
//   u = (2 * (u_bits >> 9) + 1) * 2^-24 is exact in float and in (0, 1), so the log is finite and never 0 input.
inline void box_muller(const uint32_t* __restrict u_bits, const uint32_t* __restrict t_bits, float* __restrict zc,
                       float* __restrict zs) {
  for (int p = 0; p < kChunk / 2; ++p) {
    const float u = static_cast<float>(static_cast<int32_t>(((u_bits[p] >> 9) << 1) | 1u)) * 5.9604644775390625e-8f;
    const float r = __builtin_sqrtf(-2.0f * log_unit(u));

    float c, sn;
    sincos_turn24(t_bits[p] >> 8, c, sn);
    zc[p] = r * c;
    zs[p] = r * sn;
  }
}

// Normals for the kChunk elements of blocks [b, b + kLanes): out[i] is element 4*b + i.
inline void normal_chunk(uint64_t b, uint64_t key, float mean, float std, float* __restrict out) {
  // Pair p < kLanes is (x0, x1) of block p, pair p >= kLanes is (x2, x3) of block p - kLanes.
  alignas(64) uint32_t ub[kChunk / 2], tb[kChunk / 2];
  philox_chunk(b, key, ub, tb, ub + kLanes, tb + kLanes);
  alignas(64) float zc[kChunk / 2], zs[kChunk / 2];
  box_muller(ub, tb, zc, zs);
  for (int l = 0; l < kLanes; ++l) {
    out[4 * l + 0] = zc[l] * std + mean;
    out[4 * l + 1] = zs[l] * std + mean;
    out[4 * l + 2] = zc[kLanes + l] * std + mean;
    out[4 * l + 3] = zs[kLanes + l] * std + mean;
  }
}

// bf16 bits of a finite float, round to nearest even.
inline uint16_t to_bf16(float f) {
  const uint32_t u = f2u(f);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// out[i] = element e0 + i for i in [0, n). Chunks are aligned to 16-block boundaries of the global index so
// every element is computed by the same chunk whatever e0 and n are (the value depends only on (key, e)).
template <typename T>
inline void normal_span(T* __restrict out, int64_t n, uint64_t e0, uint64_t key, float mean, float std) {
  alignas(64) float buf[kChunk];
  uint64_t e = e0;
  const uint64_t end = e0 + static_cast<uint64_t>(n);
  while (e < end) {
    const uint64_t chunk_first = e & ~uint64_t{kChunk - 1};
    normal_chunk(chunk_first >> 2, key, mean, std, buf);
    const uint64_t lo = e - chunk_first;
    const uint64_t hi = (end - chunk_first < kChunk) ? end - chunk_first : kChunk;
    T* dst = out + (e - e0);
    if constexpr (sizeof(T) == 4) {
      if (lo == 0 && hi == kChunk) {
        for (int i = 0; i < kChunk; ++i) dst[i] = buf[i];
      } else {
        for (uint64_t i = lo; i < hi; ++i) dst[i - lo] = buf[i];
      }
    } else {
      if (lo == 0 && hi == kChunk) {
        for (int i = 0; i < kChunk; ++i) dst[i] = to_bf16(buf[i]);
      } else {
        for (uint64_t i = lo; i < hi; ++i) dst[i - lo] = to_bf16(buf[i]);
      }
    }
    e = chunk_first + hi;
  }
}

}  // namespace rng_kernel
}  // namespace
}  // namespace fme

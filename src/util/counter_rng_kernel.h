// Internal to util/counter_rng: the Philox4x32-10 + Box-Muller kernel, written once and compiled twice
// (counter_rng.cpp portably, counter_rng_avx512.cpp with AVX-512 flags). Not a public header.
// Everything here has internal linkage (anonymous namespace) on purpose: the two translation units are built
// with different -m flags, and an inline function with external linkage would let the linker keep the AVX-512
// copy for the portable caller. Both TUs are compiled with -ffp-contract=off -fno-math-errno and no fast-math;
// every fused multiply-add is written out (std::fma in the scalar code, _mm512_fmadd_ps in the vector code), so
// the two perform the same IEEE-754 float operations in the same order and give bit-identical results.
// Leaves out threading and the 2-D addressing (counter_rng.cpp does those).
#pragma once
#include <cmath>
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

// A group is 32 elements: 16 Box-Muller pairs from 8 Philox blocks (definition in counter_rng.h).
constexpr int kGroup = 32;
// The vector kernel works on 4 groups at once (16 independent Philox chains in flight hide the multiply
// latency); spans are cut at multiples of kChunk elements of the global index.
constexpr int kChunk = 4 * kGroup;

// Polynomial coefficients (float). log: Cephes logf, degree 9 in t = m - 1, m in [sqrt(1/2), sqrt(2)).
constexpr float kLogP[9] = {7.0376836292e-2f,  -1.1514610310e-1f, 1.1676998740e-1f,
                            -1.2420140846e-1f, 1.4249322787e-1f,  -1.6668057665e-1f,
                            2.0000714765e-1f,  -2.4999993993e-1f, 3.3333331174e-1f};
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f, kSqrtHalf = 0.70710678118654752440f;
// sin/cos: Cephes sinf/cosf on (-pi/4, pi/4).
constexpr float kSin[3] = {-1.9515295891e-4f, 8.3321608736e-3f, -1.6666654611e-1f};
constexpr float kCos[3] = {2.443315711809948e-5f, -1.388731625493765e-3f, 4.166664568298827e-2f};
constexpr float kHalfPiOver2p23 = 1.8725351414619643e-7f;  // (pi/2) / 2^23

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

inline void philox4x32_10_block(uint64_t b, uint64_t key, uint32_t x[4]) {
  uint32_t c0 = static_cast<uint32_t>(b), c1 = static_cast<uint32_t>(b >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = uint64_t{kPhiloxM0} * c0;
    const uint64_t p1 = uint64_t{kPhiloxM1} * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  x[0] = c0;
  x[1] = c1;
  x[2] = c2;
  x[3] = c3;
}

// ---- scalar reference of the transform (the definition; the vector code below mirrors it op for op) ----

// u = ((xu >> 8) + 1) * 2^-24, exact, in [2^-24, 1].
inline float radius_uniform(uint32_t xu) {
  return static_cast<float>(static_cast<int32_t>((xu >> 8) + 1u)) * 0x1p-24f;
}

// Natural log for u in [2^-24, 1], the Cephes logf scheme with fused multiply-adds: u = m * 2^e with
// m in [sqrt(1/2), sqrt(2)), log(1 + t) for t = m - 1 (exact by Sterbenz) by a degree-9 polynomial,
// e * log(2) split in two parts. Error bounds: tests/util/test_counter_rng.cpp (LogApproxMatchesStd).
inline float log_unit(float u) {
  const uint32_t bits = f2u(u);
  float e = static_cast<float>(static_cast<int32_t>(bits >> 23) - 126);  // u = m * 2^e, m in [0.5, 1)
  float m = u2f((bits & 0x007FFFFFu) | 0x3F000000u);
  if (m < kSqrtHalf) {
    m = m + m;
    e = e - 1.0f;
  }
  const float t = m - 1.0f;
  const float z = t * t;
  float y = kLogP[0];
  for (int i = 1; i < 9; ++i) y = std::fma(y, t, kLogP[i]);
  y = (y * t) * z;
  y = std::fma(e, kLn2Lo, y);
  y = std::fma(-0.5f, z, y);
  const float l = t + y;
  return std::fma(e, kLn2Hi, l);
}

// cos and sin of theta = 2*pi*(t + 0.5)/2^24, t in [0, 2^24): the quadrant k and the remainder
// phi in (-pi/4, pi/4) come exactly from integer arithmetic, then Cephes sinf/cosf polynomials of phi.
inline void sincos_turn24(uint32_t t, float& cos_out, float& sin_out) {
  const uint32_t s = (t + (1u << 21)) & 0x00FFFFFFu;
  // 2 * (s mod 2^22) + 1 - 2^22: odd, |value| < 2^22, exact as float; one rounding in the product.
  const int32_t twice_rem = static_cast<int32_t>((s << 1) & 0x007FFFFEu) + (1 - (1 << 22));
  const float phi = static_cast<float>(twice_rem) * kHalfPiOver2p23;
  const float z = phi * phi;
  float sp = std::fma(kSin[0], z, kSin[1]);
  sp = std::fma(sp, z, kSin[2]);
  sp = std::fma(sp * z, phi, phi);
  float cp = std::fma(kCos[0], z, kCos[1]);
  cp = std::fma(cp, z, kCos[2]);
  cp = std::fma(std::fma(cp, z, -0.5f), z, 1.0f);
  // k = s >> 22: odd quadrants swap sin and cos; cos(k*pi/2 + phi) is negative for k in {1, 2}, sin for
  // k in {2, 3}: those are bit 23 of s + 2^22 and of s, moved to the sign bit.
  const bool swap = (s & (1u << 22)) != 0;
  const float c = swap ? sp : cp;
  const float sn = swap ? cp : sp;
  cos_out = u2f(f2u(c) ^ (((s + (1u << 22)) << 8) & 0x80000000u));
  sin_out = u2f(f2u(sn) ^ ((s << 8) & 0x80000000u));
}

// One Box-Muller pair: r = sqrt(-2 log u), (r cos theta, r sin theta), then * std + mean (one fma each).
inline void pair_normal(uint32_t xu, uint32_t xt, float mean, float std, float& zc, float& zs) {
  const float r = std::sqrt(-2.0f * log_unit(radius_uniform(xu)));
  float c, s;
  sincos_turn24(xt >> 8, c, s);
  zc = std::fma(r * c, std, mean);
  zs = std::fma(r * s, std, mean);
}

// The 32 elements of group g: pair p in [0, 16) takes words (0, 1) of Philox block 8g + p for p < 8 and
// words (2, 3) of block 8g + p - 8 otherwise; out[p] = its cosine normal, out[16 + p] its sine normal.
inline void normal_group_scalar(uint64_t g, uint64_t key, float mean, float std, float* __restrict out) {
  for (int j = 0; j < 8; ++j) {
    uint32_t x[4];
    philox4x32_10_block(8 * g + static_cast<uint64_t>(j), key, x);
    pair_normal(x[0], x[1], mean, std, out[j], out[16 + j]);
    pair_normal(x[2], x[3], mean, std, out[8 + j], out[24 + j]);
  }
}

#if defined(__AVX512F__)
// ---- the AVX-512 kernel: 4 groups (128 elements) per call ----

// Groups g .. g+3 into out[0, 128).
// Philox runs on 8 blocks per zmm, one block per 64-bit lane holding its 32-bit word in the low half.
// vpmuludq reads only the low 32 bits of each lane, so the high halves may carry garbage between rounds and
// the 32x32->64 product needs no masking or shuffles: hi = p >> 32, lo = low half of p. Integer-exact.
// The transform then mirrors pair_normal op for op; getmant/getexp give exactly the scalar m and e - 1.
inline void normal_chunk_avx512(uint64_t g, uint64_t key, float mean, float std, float* __restrict out) {
  constexpr int kV = kChunk / kGroup;
  __m512i c0[kV], c1[kV], c2[kV], c3[kV];
  const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  for (int v = 0; v < kV; ++v) {
    const __m512i bl = _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(8 * (g + v))), lane);
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
  // Low halves: lanes 0-7 = word 0 (or 1) of blocks 0-7, lanes 8-15 = word 2 (or 3): pairs p = 0..15.
  // Each step below runs over the kV groups before the next, so kV independent chains are in flight.
  const __m512i lo_idx = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512 m[kV], e[kV], t[kV], z[kV], y[kV], r[kV], phi[kV], w[kV], sp[kV], cp[kV];
  __m512i s[kV];
  for (int v = 0; v < kV; ++v) {
    const __m512i xu = _mm512_permutex2var_epi32(c0[v], lo_idx, c2[v]);
    s[v] = _mm512_permutex2var_epi32(c1[v], lo_idx, c3[v]);
    const __m512 u = _mm512_mul_ps(
        _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_srli_epi32(xu, 8), _mm512_set1_epi32(1))), _mm512_set1_ps(0x1p-24f));
    m[v] = _mm512_getmant_ps(u, _MM_MANT_NORM_p5_1, _MM_MANT_SIGN_src);
    e[v] = _mm512_add_ps(_mm512_getexp_ps(u), one);
  }
  for (int v = 0; v < kV; ++v) {
    const __mmask16 small = _mm512_cmp_ps_mask(m[v], _mm512_set1_ps(kSqrtHalf), _CMP_LT_OQ);
    m[v] = _mm512_mask_add_ps(m[v], small, m[v], m[v]);
    e[v] = _mm512_mask_sub_ps(e[v], small, e[v], one);
    t[v] = _mm512_sub_ps(m[v], one);
    z[v] = _mm512_mul_ps(t[v], t[v]);
    y[v] = _mm512_set1_ps(kLogP[0]);
  }
  for (int i = 1; i < 9; ++i)
    for (int v = 0; v < kV; ++v) y[v] = _mm512_fmadd_ps(y[v], t[v], _mm512_set1_ps(kLogP[i]));
  for (int v = 0; v < kV; ++v) {
    y[v] = _mm512_mul_ps(_mm512_mul_ps(y[v], t[v]), z[v]);
    y[v] = _mm512_fmadd_ps(e[v], _mm512_set1_ps(kLn2Lo), y[v]);
    y[v] = _mm512_fmadd_ps(_mm512_set1_ps(-0.5f), z[v], y[v]);
    const __m512 l = _mm512_fmadd_ps(e[v], _mm512_set1_ps(kLn2Hi), _mm512_add_ps(t[v], y[v]));
    r[v] = _mm512_sqrt_ps(_mm512_mul_ps(_mm512_set1_ps(-2.0f), l));
  }
  for (int v = 0; v < kV; ++v) {
    s[v] = _mm512_and_si512(_mm512_add_epi32(_mm512_srli_epi32(s[v], 8), _mm512_set1_epi32(1 << 21)), _mm512_set1_epi32(0x00FFFFFF));
    const __m512i twice_rem = _mm512_add_epi32(_mm512_and_si512(_mm512_slli_epi32(s[v], 1), _mm512_set1_epi32(0x007FFFFE)),
                                               _mm512_set1_epi32(1 - (1 << 22)));
    phi[v] = _mm512_mul_ps(_mm512_cvtepi32_ps(twice_rem), _mm512_set1_ps(kHalfPiOver2p23));
    w[v] = _mm512_mul_ps(phi[v], phi[v]);
    sp[v] = _mm512_fmadd_ps(_mm512_set1_ps(kSin[0]), w[v], _mm512_set1_ps(kSin[1]));
    cp[v] = _mm512_fmadd_ps(_mm512_set1_ps(kCos[0]), w[v], _mm512_set1_ps(kCos[1]));
  }
  for (int v = 0; v < kV; ++v) {
    sp[v] = _mm512_fmadd_ps(sp[v], w[v], _mm512_set1_ps(kSin[2]));
    cp[v] = _mm512_fmadd_ps(cp[v], w[v], _mm512_set1_ps(kCos[2]));
  }
  for (int v = 0; v < kV; ++v) {
    sp[v] = _mm512_fmadd_ps(_mm512_mul_ps(sp[v], w[v]), phi[v], phi[v]);
    cp[v] = _mm512_fmadd_ps(_mm512_fmadd_ps(cp[v], w[v], _mm512_set1_ps(-0.5f)), w[v], one);
  }
  const __m512 vmean = _mm512_set1_ps(mean), vstd = _mm512_set1_ps(std);
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  for (int v = 0; v < kV; ++v) {
    const __mmask16 swap = _mm512_test_epi32_mask(s[v], _mm512_set1_epi32(1 << 22));
    const __m512i csign = _mm512_slli_epi32(_mm512_add_epi32(s[v], _mm512_set1_epi32(1 << 22)), 8);
    const __m512i ssign = _mm512_slli_epi32(s[v], 8);
    const __m512 c = _mm512_castsi512_ps(
        _mm512_ternarylogic_epi32(_mm512_castps_si512(_mm512_mask_blend_ps(swap, cp[v], sp[v])), csign, sign, 0x78));
    const __m512 sn = _mm512_castsi512_ps(
        _mm512_ternarylogic_epi32(_mm512_castps_si512(_mm512_mask_blend_ps(swap, sp[v], cp[v])), ssign, sign, 0x78));
    _mm512_storeu_ps(out + kGroup * v, _mm512_fmadd_ps(_mm512_mul_ps(r[v], c), vstd, vmean));
    _mm512_storeu_ps(out + kGroup * v + 16, _mm512_fmadd_ps(_mm512_mul_ps(r[v], sn), vstd, vmean));
  }
}

// bf16 (round to nearest even) of 16 finite floats: the same integer formula as to_bf16.
inline __m256i to_bf16_avx512(__m512 f) {
  const __m512i u = _mm512_castps_si512(f);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb), 16);
  return _mm512_cvtepi32_epi16(r);
}

constexpr int kSpanChunk = kChunk;
inline void normal_chunk(uint64_t g, uint64_t key, float mean, float std, float* __restrict out) {
  normal_chunk_avx512(g, key, mean, std, out);
}
#else
constexpr int kSpanChunk = kGroup;
inline void normal_chunk(uint64_t g, uint64_t key, float mean, float std, float* __restrict out) {
  normal_group_scalar(g, key, mean, std, out);
}
#endif

// bf16 bits of a finite float, round to nearest even.
inline uint16_t to_bf16(float f) {
  const uint32_t u = f2u(f);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// out[i] = element e0 + i for i in [0, n). Chunks are aligned to kSpanChunk-element boundaries of the global
// index, so every element is computed by the same group whatever e0 and n are (the value depends only on
// (key, e)); whole chunks are written in place, partial ones through a buffer.
template <typename T>
inline void normal_span(T* __restrict out, int64_t n, uint64_t e0, uint64_t key, float mean, float std) {
  alignas(64) float buf[kSpanChunk];
  uint64_t e = e0;
  const uint64_t end = e0 + static_cast<uint64_t>(n);
  while (e < end) {
    const uint64_t chunk_first = e & ~uint64_t{kSpanChunk - 1};
    const uint64_t g = chunk_first / kGroup;
    const uint64_t lo = e - chunk_first;
    const uint64_t hi = (end - chunk_first < kSpanChunk) ? end - chunk_first : kSpanChunk;
    T* dst = out + (e - e0);
    if constexpr (sizeof(T) == 4) {
      if (lo == 0 && hi == kSpanChunk) {
        normal_chunk(g, key, mean, std, dst);
      } else {
        normal_chunk(g, key, mean, std, buf);
        for (uint64_t i = lo; i < hi; ++i) dst[i - lo] = buf[i];
      }
    } else {
      normal_chunk(g, key, mean, std, buf);
#if defined(__AVX512F__)
      if (lo == 0 && hi == kSpanChunk) {
        for (int i = 0; i < kSpanChunk; i += 16) {
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), to_bf16_avx512(_mm512_load_ps(buf + i)));
        }
        e = chunk_first + hi;
        continue;
      }
#endif
      for (uint64_t i = lo; i < hi; ++i) dst[i - lo] = to_bf16(buf[i]);
    }
    e = chunk_first + hi;
  }
}

}  // namespace rng_kernel
}  // namespace
}  // namespace fme

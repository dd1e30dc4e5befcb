// Internal to fill/counter_rng: the AES-128-CTR + Box-Muller kernel, written once and compiled four times
// (counter_rng.cpp portably, counter_rng_aesni.cpp with AVX2 + FMA + AES-NI, counter_rng_avx2_vaes.cpp with
// AVX2 + FMA + VAES, counter_rng_avx512.cpp with AVX-512 + VAES). Not a public header.
// Everything here has internal linkage (anonymous namespace) on purpose: the translation units are built
// with different -m flags, and an inline function with external linkage would let the linker keep the AVX-512
// copy for the portable caller. Both TUs are compiled with -ffp-contract=off -fno-math-errno and no fast-math;
// every fused multiply-add is written out (std::fma in the scalar code, _mm512_fmadd_ps in the vector code), so
// all perform the same IEEE-754 float operations in the same order and give bit-identical results.
// Leaves out threading and the 2-D addressing (counter_rng.cpp does those).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__AVX512F__) || defined(__AES__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace fme {
namespace {
namespace rng_kernel {

// SplitMix64's output function (Steele et al. 2014), used to derive keys.
inline uint64_t mix64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A group is 32 elements: 16 Box-Muller pairs from 8 AES blocks (definition in counter_rng.h).
constexpr int kGroup = 32;
// The vector kernel works on 4 groups at once (8 independent AES chains in flight hide the aesenc latency);
// spans are cut at multiples of kChunk elements of the global index.
constexpr int kChunk = 4 * kGroup;

// log: a 32-entry table (the scheme of ARM's optimized-routines logf, in float). z in [0.6992, 1.3984) falls in
// one of 32 intervals (the top 5 bits of its offset mantissa); kLogInvC[i] = float(1/c) for the interval's
// centre c (exactly 1 for the interval holding 1, so log stays relatively exact near u = 1) and
// kLogC[i] = float(-ln(kLogInvC[i])), so log z = kLogC[i] + log1p(r) with r = z * kLogInvC[i] - 1, |r| < 0.0235.
// Made by tests/fill/counter_rng_reference.py (log_table).
constexpr float kLogInvC[32] = {
    1.4143647f,   1.38378382f,  1.35449731f,  1.32642484f,  1.29949236f,  1.27363181f,  1.24878049f,  1.22488034f,
    1.20187795f,  1.1797235f,   1.15837109f,  1.13777781f,  1.11790395f,  1.09871244f,  1.08016872f,  1.06224072f,
    1.04489791f,  1.02811241f,  1.01185775f,  1.0f,         0.962406039f, 0.934306562f, 0.90780139f,  0.882758617f,
    0.859060407f, 0.836601317f, 0.815286636f, 0.795031071f, 0.775757551f, 0.75739646f,  0.739884377f, 0.723163843f};
constexpr float kLogC[32] = {
    -0.346680462f,  -0.324821651f,  -0.303430408f, -0.282487243f, -0.261973709f, -0.241872519f, -0.222167462f,
    -0.202843159f,  -0.183885291f,  -0.165280089f, -0.147014782f, -0.129077062f, -0.111455455f, -0.0941389874f,
    -0.0771172568f, -0.0603805631f, -0.0439191908f, -0.0277245101f, -0.0117879957f, 0.0f,         0.0383188389f,
    0.0679506734f,  0.0967296585f,  0.124703482f,  0.151916042f,  0.178407639f,  0.204215527f,  0.229374081f,
    0.25391525f,    0.27786845f,    0.301261365f,  0.324119478f};
constexpr uint32_t kLogOff = 0x3f330000u;  // bits of 0.69921875: z = u / 2^k lands in [0.6992, 1.3984)
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
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

// ---- AES-128 (FIPS-197), written out for the portable build and as the key schedule of the VAES one ----
// Hand-written rather than OpenSSL's because the vector kernel needs the round keys themselves and the
// scalar path runs one block at a time; tests check both against FIPS-197 and against OpenSSL.
constexpr uint8_t kAesSbox[256] = {
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76, 0xca, 0x82, 0xc9,
    0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0, 0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f,
    0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15, 0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07,
    0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75, 0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3,
    0x29, 0xe3, 0x2f, 0x84, 0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58,
    0xcf, 0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8, 0x51, 0xa3,
    0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2, 0xcd, 0x0c, 0x13, 0xec, 0x5f,
    0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73, 0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88,
    0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb, 0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac,
    0x62, 0x91, 0x95, 0xe4, 0x79, 0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a,
    0xae, 0x08, 0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a, 0x70,
    0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e, 0xe1, 0xf8, 0x98, 0x11,
    0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf, 0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42,
    0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16};

struct AesKey {
  uint8_t rk[11][16];  // round keys, bytes in FIPS-197 order
};

inline AesKey aes128_expand(const uint8_t key[16]) {
  AesKey k;
  std::memcpy(k.rk[0], key, 16);
  uint8_t rcon = 0x01;
  for (int r = 1; r <= 10; ++r) {
    const uint8_t* p = k.rk[r - 1];
    uint8_t* q = k.rk[r];
    // temp = SubWord(RotWord(last word of the previous round key)) ^ Rcon
    const uint8_t t[4] = {static_cast<uint8_t>(kAesSbox[p[13]] ^ rcon), kAesSbox[p[14]], kAesSbox[p[15]], kAesSbox[p[12]]};
    for (int i = 0; i < 4; ++i) q[i] = p[i] ^ t[i];
    for (int i = 4; i < 16; ++i) q[i] = p[i] ^ q[i - 4];
    rcon = static_cast<uint8_t>((rcon << 1) ^ ((rcon & 0x80) ? 0x1b : 0x00));
  }
  return k;
}

inline uint8_t xtime(uint8_t a) { return static_cast<uint8_t>((a << 1) ^ ((a & 0x80) ? 0x1b : 0x00)); }

// One block: state byte i is row i % 4, column i / 4 (FIPS-197 section 3.4).
inline void aes128_encrypt(const AesKey& k, const uint8_t in[16], uint8_t out[16]) {
  uint8_t s[16];
  for (int i = 0; i < 16; ++i) s[i] = in[i] ^ k.rk[0][i];
  for (int r = 1; r <= 10; ++r) {
    uint8_t t[16];
    for (int c = 0; c < 4; ++c)  // SubBytes and ShiftRows: row i moves left by i columns
      for (int i = 0; i < 4; ++i) t[4 * c + i] = kAesSbox[s[4 * ((c + i) % 4) + i]];
    if (r < 10) {  // MixColumns
      for (int c = 0; c < 4; ++c) {
        const uint8_t a0 = t[4 * c], a1 = t[4 * c + 1], a2 = t[4 * c + 2], a3 = t[4 * c + 3];
        const uint8_t all = a0 ^ a1 ^ a2 ^ a3;
        t[4 * c] = a0 ^ all ^ xtime(a0 ^ a1);
        t[4 * c + 1] = a1 ^ all ^ xtime(a1 ^ a2);
        t[4 * c + 2] = a2 ^ all ^ xtime(a2 ^ a3);
        t[4 * c + 3] = a3 ^ all ^ xtime(a3 ^ a0);
      }
    }
    for (int i = 0; i < 16; ++i) s[i] = t[i] ^ k.rk[r][i];
  }
  std::memcpy(out, s, 16);
}

// The stream's AES key: the little-endian bytes of key, then of mix64(key).
inline AesKey stream_aes_key(uint64_t key) {
  uint8_t bytes[16];
  const uint64_t hi = mix64(key);
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<uint8_t>(key >> (8 * i));
    bytes[8 + i] = static_cast<uint8_t>(hi >> (8 * i));
  }
  return aes128_expand(bytes);
}

// The round keys of the last stream key this thread used: spans come one row segment at a time.
inline const AesKey& cached_aes_key(uint64_t key) {
  thread_local uint64_t last = 0;
  thread_local bool valid = false;
  thread_local AesKey k;
  if (!valid || last != key) {
    k = stream_aes_key(key);
    last = key;
    valid = true;
  }
  return k;
}

// Block b: AES-128 of the 16 bytes LE64(b) || 0^64, read as 4 little-endian uint32 words.
inline void aes_ctr_block(const AesKey& k, uint64_t b, uint32_t x[4]) {
  uint8_t in[16] = {}, out[16];
  for (int i = 0; i < 8; ++i) in[i] = static_cast<uint8_t>(b >> (8 * i));
  aes128_encrypt(k, in, out);
  for (int w = 0; w < 4; ++w)
    x[w] = uint32_t{out[4 * w]} | uint32_t{out[4 * w + 1]} << 8 | uint32_t{out[4 * w + 2]} << 16 |
           uint32_t{out[4 * w + 3]} << 24;
}

// Blocks b0 .. b0+7 into x[8][4]. With AES-NI (the -maes build) the 8 blocks run as 8 interleaved aesenc
// chains, hiding its latency; x86 is little-endian, so the stored bytes are already the four LE words.
inline void aes_ctr_blocks8(const AesKey& k, uint64_t b0, uint32_t x[8][4]) {
#if defined(__AES__)
  __m128i rk[11], st[8];
  for (int r = 0; r < 11; ++r) rk[r] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(k.rk[r]));
  for (int j = 0; j < 8; ++j) st[j] = _mm_xor_si128(_mm_set_epi64x(0, static_cast<long long>(b0 + j)), rk[0]);
  for (int r = 1; r < 10; ++r)
    for (int j = 0; j < 8; ++j) st[j] = _mm_aesenc_si128(st[j], rk[r]);
  for (int j = 0; j < 8; ++j) _mm_storeu_si128(reinterpret_cast<__m128i*>(x[j]), _mm_aesenclast_si128(st[j], rk[10]));
#else
  for (int j = 0; j < 8; ++j) aes_ctr_block(k, b0 + static_cast<uint64_t>(j), x[j]);
#endif
}

// ---- scalar reference of the transform (the definition; the vector code below mirrors it op for op) ----

// u = ((xu >> 8) + 1) * 2^-24, exact, in [2^-24, 1].
inline float radius_uniform(uint32_t xu) {
  return static_cast<float>(static_cast<int32_t>((xu >> 8) + 1u)) * 0x1p-24f;
}

// Natural log for u in [2^-24, 1]: u = z * 2^k exactly (integer ops), log z from the table and a degree-4
// Taylor polynomial of log1p(r) (|r| < 0.0235: the r^5 term is < 1.5e-9), k * log(2) split in two parts.
// Error bounds: tests/fill/test_counter_rng.cpp (LogApproxMatchesStd).
inline float log_unit(float u) {
  const uint32_t ix = f2u(u);
  const uint32_t tmp = ix - kLogOff;
  const uint32_t i = (tmp >> 18) & 31u;
  const float k = static_cast<float>(static_cast<int32_t>(tmp) >> 23);
  const float z = u2f(ix - (tmp & 0xff800000u));
  const float r = std::fma(z, kLogInvC[i], -1.0f);
  const float r2 = r * r;
  float p = std::fma(-0.25f, r, 0.333333343f);
  p = std::fma(p, r, -0.5f);
  p = p * r2;
  const float t = (kLogC[i] + r) + p;
  return std::fma(k, kLn2Hi, std::fma(k, kLn2Lo, t));
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

// The 32 elements of group g: pair p in [0, 16) takes words (0, 1) of AES block 8g + p for p < 8 and
// words (2, 3) of block 8g + p - 8 otherwise; out[p] = its cosine normal, out[16 + p] its sine normal.
inline void normal_group_scalar(uint64_t g, const AesKey& key, float mean, float std, float* __restrict out) {
  uint32_t x[8][4];
  aes_ctr_blocks8(key, 8 * g, x);
  for (int j = 0; j < 8; ++j) {
    pair_normal(x[j][0], x[j][1], mean, std, out[j], out[16 + j]);
    pair_normal(x[j][2], x[j][3], mean, std, out[8 + j], out[24 + j]);
  }
}

#if defined(__AVX512F__)
// ---- the AVX-512 kernel: 4 groups (128 elements) per call ----

// Groups g .. g+3 into out[0, 128), with the stream's round keys broadcast to every 128-bit lane.
// AES runs on 4 blocks per zmm (one per 128-bit lane); the transform then mirrors pair_normal op for op,
inline void normal_chunk_avx512(uint64_t g, const __m512i rk[11], float mean, float std, float* __restrict out) {
  constexpr int kV = kChunk / kGroup;
  __m512i st[2 * kV];  // group v: blocks 8(g+v) .. +3 in st[2v], +4 .. +7 in st[2v + 1]
  const __m512i offs = _mm512_set_epi64(0, 3, 0, 2, 0, 1, 0, 0);
  for (int j = 0; j < 2 * kV; ++j) {
    // Lane i: the plaintext LE64(b + i) || 0^64 (mask 0x55: low quadwords get the counter, high stay 0).
    const __m512i ctr = _mm512_maskz_add_epi64(0x55, _mm512_set1_epi64(static_cast<long long>(8 * g + 4 * j)), offs);
    st[j] = _mm512_xor_si512(ctr, rk[0]);
  }
  for (int r = 1; r < 10; ++r)
    for (int j = 0; j < 2 * kV; ++j) st[j] = _mm512_aesenc_epi128(st[j], rk[r]);
  for (int j = 0; j < 2 * kV; ++j) st[j] = _mm512_aesenclast_epi128(st[j], rk[10]);
  // Pairs p = 0..15: lanes 0-7 take word 0 (u) / 1 (t) of blocks 0-7, lanes 8-15 word 2 / 3; block j's word
  // w is dword 4j + w of the two registers of its group. Each step below runs over the kV groups before the
  // next, so kV independent chains are in flight.
  const __m512i idx_u = _mm512_set_epi32(30, 26, 22, 18, 14, 10, 6, 2, 28, 24, 20, 16, 12, 8, 4, 0);
  const __m512i idx_t = _mm512_set_epi32(31, 27, 23, 19, 15, 11, 7, 3, 29, 25, 21, 17, 13, 9, 5, 1);
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512i ix[kV];
  __m512 k[kV], logc[kV], r[kV], rad[kV], phi[kV], w[kV], sp[kV], cp[kV];
  __m512i s[kV];
  for (int v = 0; v < kV; ++v) {
    const __m512i xu = _mm512_permutex2var_epi32(st[2 * v], idx_u, st[2 * v + 1]);
    s[v] = _mm512_permutex2var_epi32(st[2 * v], idx_t, st[2 * v + 1]);
    const __m512 u = _mm512_mul_ps(
        _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_srli_epi32(xu, 8), _mm512_set1_epi32(1))), _mm512_set1_ps(0x1p-24f));
    ix[v] = _mm512_castps_si512(u);
  }
  // log u as log_unit: the table lookups are one vpermt2ps each (32 floats in two registers, index = low 5
  // bits of tmp >> 18).
  const __m512 inv_lo = _mm512_loadu_ps(kLogInvC), inv_hi = _mm512_loadu_ps(kLogInvC + 16);
  const __m512 lc_lo = _mm512_loadu_ps(kLogC), lc_hi = _mm512_loadu_ps(kLogC + 16);
  for (int v = 0; v < kV; ++v) {
    const __m512i tmp = _mm512_sub_epi32(ix[v], _mm512_set1_epi32(static_cast<int>(kLogOff)));
    const __m512i idx = _mm512_srli_epi32(tmp, 18);
    k[v] = _mm512_cvtepi32_ps(_mm512_srai_epi32(tmp, 23));
    const __m512 z = _mm512_castsi512_ps(
        _mm512_sub_epi32(ix[v], _mm512_and_si512(tmp, _mm512_set1_epi32(static_cast<int>(0xff800000u)))));
    logc[v] = _mm512_permutex2var_ps(lc_lo, idx, lc_hi);
    r[v] = _mm512_fmadd_ps(z, _mm512_permutex2var_ps(inv_lo, idx, inv_hi), _mm512_set1_ps(-1.0f));
  }
  for (int v = 0; v < kV; ++v) {
    const __m512 r2 = _mm512_mul_ps(r[v], r[v]);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(-0.25f), r[v], _mm512_set1_ps(0.333333343f));
    p = _mm512_fmadd_ps(p, r[v], _mm512_set1_ps(-0.5f));
    p = _mm512_mul_ps(p, r2);
    const __m512 t = _mm512_add_ps(_mm512_add_ps(logc[v], r[v]), p);
    const __m512 l = _mm512_fmadd_ps(k[v], _mm512_set1_ps(kLn2Hi), _mm512_fmadd_ps(k[v], _mm512_set1_ps(kLn2Lo), t));
    rad[v] = _mm512_sqrt_ps(_mm512_mul_ps(_mm512_set1_ps(-2.0f), l));
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
    _mm512_storeu_ps(out + kGroup * v, _mm512_fmadd_ps(_mm512_mul_ps(rad[v], c), vstd, vmean));
    _mm512_storeu_ps(out + kGroup * v + 16, _mm512_fmadd_ps(_mm512_mul_ps(rad[v], sn), vstd, vmean));
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
struct ChunkKey {  // the round keys, broadcast once per span
  __m512i rk[11];
  explicit ChunkKey(const AesKey& k) {
    for (int r = 0; r < 11; ++r)
      rk[r] = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k.rk[r])));
  }
};
inline void normal_chunk(uint64_t g, const ChunkKey& key, float mean, float std, float* __restrict out) {
  normal_chunk_avx512(g, key.rk, mean, std, out);
}
#elif defined(__AVX2__) && defined(__FMA__) && defined(__AES__)
// ---- the AVX2 kernel: 2 groups (64 elements) per call, 8 pairs per ymm ----
// AES runs on 16 blocks per call: with VAES (the -mvaes build) two blocks per ymm, else one per xmm, as
// interleaved chains. The transform mirrors pair_normal op for op; the 32-entry log tables are looked up
// with four vpermps and three blends each (AVX2 has no two-register permute).

// Table t (32 floats in 4 registers) at idx: the low 3 bits pick within a register (vpermps), bits 3 and 4
// (moved to the sign bit, what blendv reads) pick the register.
inline __m256 lookup32_avx2(const __m256 t[4], __m256i idx, __m256 bit3, __m256 bit4) {
  const __m256 lo = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t[0], idx), _mm256_permutevar8x32_ps(t[1], idx), bit3);
  const __m256 hi = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t[2], idx), _mm256_permutevar8x32_ps(t[3], idx), bit3);
  return _mm256_blendv_ps(lo, hi, bit4);
}

struct LogTablesAvx2 {
  __m256 inv[4], c[4];
  LogTablesAvx2() {
    for (int q = 0; q < 4; ++q) {
      inv[q] = _mm256_loadu_ps(kLogInvC + 8 * q);
      c[q] = _mm256_loadu_ps(kLogC + 8 * q);
    }
  }
};

// Eight Box-Muller pairs from their words xu (radius) and xt (angle): zc = cosine normals, zs = sine normals.
inline void pairs8_avx2(__m256i xu, __m256i xt, const LogTablesAvx2& tab, __m256 vmean, __m256 vstd, __m256& zc,
                        __m256& zs) {
  // u = ((xu >> 8) + 1) * 2^-24; log_unit(u).
  const __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_srli_epi32(xu, 8), _mm256_set1_epi32(1))),
                                 _mm256_set1_ps(0x1p-24f));
  const __m256i ix = _mm256_castps_si256(u);
  const __m256i tmp = _mm256_sub_epi32(ix, _mm256_set1_epi32(static_cast<int>(kLogOff)));
  const __m256i idx = _mm256_srli_epi32(tmp, 18);
  const __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)), bit4 = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 27));
  const __m256 k = _mm256_cvtepi32_ps(_mm256_srai_epi32(tmp, 23));
  const __m256 z = _mm256_castsi256_ps(
      _mm256_sub_epi32(ix, _mm256_and_si256(tmp, _mm256_set1_epi32(static_cast<int>(0xff800000u)))));
  const __m256 r = _mm256_fmadd_ps(z, lookup32_avx2(tab.inv, idx, bit3, bit4), _mm256_set1_ps(-1.0f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(-0.25f), r, _mm256_set1_ps(0.333333343f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(-0.5f));
  p = _mm256_mul_ps(p, r2);
  const __m256 t = _mm256_add_ps(_mm256_add_ps(lookup32_avx2(tab.c, idx, bit3, bit4), r), p);
  const __m256 l = _mm256_fmadd_ps(k, _mm256_set1_ps(kLn2Hi), _mm256_fmadd_ps(k, _mm256_set1_ps(kLn2Lo), t));
  const __m256 rad = _mm256_sqrt_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0f), l));
  // sincos_turn24(xt >> 8).
  const __m256i s = _mm256_and_si256(_mm256_add_epi32(_mm256_srli_epi32(xt, 8), _mm256_set1_epi32(1 << 21)),
                                     _mm256_set1_epi32(0x00FFFFFF));
  const __m256i twice_rem = _mm256_add_epi32(_mm256_and_si256(_mm256_slli_epi32(s, 1), _mm256_set1_epi32(0x007FFFFE)),
                                             _mm256_set1_epi32(1 - (1 << 22)));
  const __m256 phi = _mm256_mul_ps(_mm256_cvtepi32_ps(twice_rem), _mm256_set1_ps(kHalfPiOver2p23));
  const __m256 w = _mm256_mul_ps(phi, phi);
  __m256 sp = _mm256_fmadd_ps(_mm256_set1_ps(kSin[0]), w, _mm256_set1_ps(kSin[1]));
  sp = _mm256_fmadd_ps(sp, w, _mm256_set1_ps(kSin[2]));
  sp = _mm256_fmadd_ps(_mm256_mul_ps(sp, w), phi, phi);
  __m256 cp = _mm256_fmadd_ps(_mm256_set1_ps(kCos[0]), w, _mm256_set1_ps(kCos[1]));
  cp = _mm256_fmadd_ps(cp, w, _mm256_set1_ps(kCos[2]));
  cp = _mm256_fmadd_ps(_mm256_fmadd_ps(cp, w, _mm256_set1_ps(-0.5f)), w, _mm256_set1_ps(1.0f));
  // Quadrant: bit 22 of s swaps sin and cos (moved to the sign bit for blendv); the signs are bit 23 of
  // s + 2^22 (cos) and of s (sin).
  const __m256 swap = _mm256_castsi256_ps(_mm256_slli_epi32(s, 9));
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  const __m256i csign = _mm256_and_si256(_mm256_slli_epi32(_mm256_add_epi32(s, _mm256_set1_epi32(1 << 22)), 8), sign);
  const __m256i ssign = _mm256_and_si256(_mm256_slli_epi32(s, 8), sign);
  const __m256 c = _mm256_xor_ps(_mm256_blendv_ps(cp, sp, swap), _mm256_castsi256_ps(csign));
  const __m256 sn = _mm256_xor_ps(_mm256_blendv_ps(sp, cp, swap), _mm256_castsi256_ps(ssign));
  zc = _mm256_fmadd_ps(_mm256_mul_ps(rad, c), vstd, vmean);
  zs = _mm256_fmadd_ps(_mm256_mul_ps(rad, sn), vstd, vmean);
}

constexpr int kAvx2Groups = 2;
constexpr int kSpanChunk = kAvx2Groups * kGroup;
struct ChunkKey {  // the round keys, loaded (VAES: broadcast to both lanes) once per span
#if defined(__VAES__)
  __m256i rk[11];
#else
  __m128i rk[11];
#endif
  LogTablesAvx2 tables;
  explicit ChunkKey(const AesKey& k) {
    for (int r = 0; r < 11; ++r) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(k.rk[r]));
#if defined(__VAES__)
      rk[r] = _mm256_broadcastsi128_si256(x);
#else
      rk[r] = x;
#endif
    }
  }
};

// Groups g, g+1 into out[0, 64). Per group, y[j] (j < 4) holds blocks 8g+j (low lane) and 8g+j+4 (high
// lane); a 4 x 4 transpose of 32-bit words within the lanes then gives the 8 pairs' words in pair order.
inline void normal_chunk(uint64_t g, const ChunkKey& key, float mean, float std, float* __restrict out) {
  __m256i y[kAvx2Groups][4];
#if defined(__VAES__)
  for (int v = 0; v < kAvx2Groups; ++v)
    for (int j = 0; j < 4; ++j) {
      const long long b = static_cast<long long>(8 * (g + v) + j);
      y[v][j] = _mm256_xor_si256(_mm256_set_epi64x(0, b + 4, 0, b), key.rk[0]);
    }
  for (int r = 1; r < 10; ++r)
    for (int v = 0; v < kAvx2Groups; ++v)
      for (int j = 0; j < 4; ++j) y[v][j] = _mm256_aesenc_epi128(y[v][j], key.rk[r]);
  for (int v = 0; v < kAvx2Groups; ++v)
    for (int j = 0; j < 4; ++j) y[v][j] = _mm256_aesenclast_epi128(y[v][j], key.rk[10]);
#else
  __m128i st[kAvx2Groups][8];
  for (int v = 0; v < kAvx2Groups; ++v)
    for (int j = 0; j < 8; ++j)
      st[v][j] = _mm_xor_si128(_mm_set_epi64x(0, static_cast<long long>(8 * (g + v) + j)), key.rk[0]);
  for (int r = 1; r < 10; ++r)
    for (int v = 0; v < kAvx2Groups; ++v)
      for (int j = 0; j < 8; ++j) st[v][j] = _mm_aesenc_si128(st[v][j], key.rk[r]);
  for (int v = 0; v < kAvx2Groups; ++v)
    for (int j = 0; j < 8; ++j) st[v][j] = _mm_aesenclast_si128(st[v][j], key.rk[10]);
  for (int v = 0; v < kAvx2Groups; ++v)
    for (int j = 0; j < 4; ++j) y[v][j] = _mm256_set_m128i(st[v][j + 4], st[v][j]);
#endif
  const __m256 vmean = _mm256_set1_ps(mean), vstd = _mm256_set1_ps(std);
  for (int v = 0; v < kAvx2Groups; ++v) {
    const __m256i t0 = _mm256_unpacklo_epi32(y[v][0], y[v][1]), t1 = _mm256_unpackhi_epi32(y[v][0], y[v][1]);
    const __m256i t2 = _mm256_unpacklo_epi32(y[v][2], y[v][3]), t3 = _mm256_unpackhi_epi32(y[v][2], y[v][3]);
    // Pairs 0-7 use words 0 (u) and 1 (t) of blocks 0-7; pairs 8-15 words 2 and 3.
    __m256 zc, zs;
    pairs8_avx2(_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2), key.tables, vmean, vstd, zc, zs);
    _mm256_storeu_ps(out + kGroup * v, zc);
    _mm256_storeu_ps(out + kGroup * v + 16, zs);
    pairs8_avx2(_mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3), key.tables, vmean, vstd, zc, zs);
    _mm256_storeu_ps(out + kGroup * v + 8, zc);
    _mm256_storeu_ps(out + kGroup * v + 24, zs);
  }
}

// bf16 (round to nearest even) of 16 finite floats, as to_bf16: packus keeps the 16-bit results exactly
// (they are below 2^16), and the 64-bit permute undoes its per-lane interleave.
inline __m256i to_bf16x16_avx2(__m256 a, __m256 b) {
  auto round = [](__m256 f) {
    const __m256i u = _mm256_castps_si256(f);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    return _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), lsb), 16);
  };
  return _mm256_permute4x64_epi64(_mm256_packus_epi32(round(a), round(b)), 0xD8);
}
#else
constexpr int kSpanChunk = kGroup;
struct ChunkKey {
  const AesKey& k;
  explicit ChunkKey(const AesKey& key) : k(key) {}
};
inline void normal_chunk(uint64_t g, const ChunkKey& key, float mean, float std, float* __restrict out) {
  normal_group_scalar(g, key.k, mean, std, out);
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
inline void normal_span(T* __restrict out, int64_t n, uint64_t e0, uint64_t stream, float mean, float std) {
  alignas(64) float buf[kSpanChunk];
  const ChunkKey key(cached_aes_key(stream));
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
#elif defined(__AVX2__) && defined(__FMA__) && defined(__AES__)
      if (lo == 0 && hi == kSpanChunk) {
        for (int i = 0; i < kSpanChunk; i += 16) {
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                              to_bf16x16_avx2(_mm256_load_ps(buf + i), _mm256_load_ps(buf + i + 8)));
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

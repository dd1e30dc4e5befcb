// Tests of fill/counter_rng and fill/fresh_memory: the kernel's AES-128 against FIPS-197 and OpenSSL,
// the accuracy of the kernel's own log/sin/cos polynomials, pinned values from an independent (numpy)
// reimplementation of the documented definition, invariance of fill_normal under sharding, thread count and
// code path (AVX-512 vs portable), the bf16 rounding, and the distribution's statistics.
// Leaves out speed (bench/memory/bench_memory_floor.cpp measures it).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fill/counter_rng.h"
#include "util/error.h"
#include "fill/fresh_memory.h"

namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// FIPS-197 Appendix C.1, then random keys and blocks against OpenSSL's AES-128 (an implementation no one here
// wrote).
TEST(CounterRngAes, Fips197AndOpenSsl) {
  uint8_t key[16], in[16], out[16];
  for (int i = 0; i < 16; ++i) {
    key[i] = static_cast<uint8_t>(i);
    in[i] = static_cast<uint8_t>(0x11 * i);
  }
  const uint8_t want[16] = {0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30,
                            0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a};
  fme::rng_detail::aes128_encrypt_block(key, in, out);
  EXPECT_EQ(0, std::memcmp(out, want, 16));

  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ASSERT_NE(ctx, nullptr);
  uint64_t x = 12345;
  for (int trial = 0; trial < 200; ++trial) {
    for (int i = 0; i < 16; ++i) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      key[i] = static_cast<uint8_t>(x >> 56);
      in[i] = static_cast<uint8_t>(x >> 40);
    }
    uint8_t ref[32];
    int len = 0;
    ASSERT_EQ(1, EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), nullptr, key, nullptr));
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    ASSERT_EQ(1, EVP_EncryptUpdate(ctx, ref, &len, in, 16));
    ASSERT_EQ(len, 16);
    fme::rng_detail::aes128_encrypt_block(key, in, out);
    ASSERT_EQ(0, std::memcmp(out, ref, 16)) << "trial " << trial;
  }
  EVP_CIPHER_CTX_free(ctx);
}

// Block b of a stream is AES-128 under LE64(key) || LE64(mix(key)) of LE64(b) || 0^64 (counter_rng.h).
TEST(CounterRngAes, StreamBlockIsAesCounterMode) {
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  for (uint64_t key : {uint64_t{0}, uint64_t{0x0123456789abcdefULL}, fme::stream_key(42, "w")}) {
    uint8_t k[16];
    for (int i = 0; i < 8; ++i) {
      k[i] = static_cast<uint8_t>(key >> (8 * i));
      k[8 + i] = static_cast<uint8_t>(mix(key) >> (8 * i));
    }
    ASSERT_EQ(1, EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), nullptr, k, nullptr));
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    for (uint64_t b : {uint64_t{0}, uint64_t{1}, uint64_t{255}, uint64_t{1} << 40, ~uint64_t{0}}) {
      uint8_t in[16] = {}, ref[32];
      for (int i = 0; i < 8; ++i) in[i] = static_cast<uint8_t>(b >> (8 * i));
      int len = 0;
      ASSERT_EQ(1, EVP_EncryptUpdate(ctx, ref, &len, in, 16));
      uint32_t words[4];
      fme::rng_detail::stream_block(key, b, words);
      for (int w = 0; w < 4; ++w) {
        uint32_t want;
        std::memcpy(&want, ref + 4 * w, 4);  // little-endian host (x86-64, aarch64)
        EXPECT_EQ(words[w], want) << "key " << key << " block " << b << " word " << w;
      }
    }
  }
  EVP_CIPHER_CTX_free(ctx);
}

TEST(CounterRngKey, DefinitionAndSeparation) {
  // Pinned from an independent Python implementation of the definition in counter_rng.h.
  EXPECT_EQ(fme::stream_key(0, ""), 0x5b21f68ffa77f14cULL);
  EXPECT_EQ(fme::stream_key(42, "model.layers.0.mlp.up_proj.weight"), 0xff8491fa91f3a26bULL);
  EXPECT_NE(fme::stream_key(1, "a"), fme::stream_key(2, "a"));
  EXPECT_NE(fme::stream_key(1, "a"), fme::stream_key(1, "b"));
  EXPECT_EQ(fme::stream_key(7, "x.weight"), fme::stream_key(7, "x.weight"));
}

// The kernel's log is only ever called on u = k * 2^-24, k in [1, 2^24]; check every one of those inputs,
// and that it never goes above 0 (the radius takes its square root).
TEST(CounterRngMath, LogApproxMatchesStd) {
  double max_rel = 0, max_abs = 0;
  for (uint32_t k = 1; k <= (1u << 24); ++k) {
    const float u = static_cast<float>(k) * 0x1p-24f;
    const double ref = std::log(static_cast<double>(u));
    const float got = fme::rng_detail::log_unit(u);
    ASSERT_LE(got, 0.0f) << k;
    if (k == (1u << 24)) {
      EXPECT_EQ(got, 0.0f);
      continue;
    }
    max_abs = std::max(max_abs, std::fabs(got - ref));
    max_rel = std::max(max_rel, std::fabs(got - ref) / std::fabs(ref));
  }
  // Measured: max rel err 1.95e-7 (~1.6 ulp), max abs 5.1e-7 (at u near 2^-24 where |log| ~ 16.6).
  std::printf("log_unit: max rel err %.3g, max abs err %.3g\n", max_rel, max_abs);
  EXPECT_LT(max_rel, 2.5e-7);
  EXPECT_LT(max_abs, 1.5e-6);
  // The exact bits, from tests/fill/counter_rng_reference.py.
  const struct {
    uint32_t k, bits;
  } pins[] = {{1u, 0xc1851592u},        {2u, 0xc17f1402u},       {3u, 0xc178973au},
              {1000u, 0xc11ba4fau},     {12345678u, 0xbe9d09d9u}, {8388608u, 0xbf317218u},
              {8388609u, 0xbf317216u},  {16318464u, 0xbce31e97u}, {16777215u, 0xb3800000u}};
  for (const auto& p : pins) EXPECT_EQ(bits_of(fme::rng_detail::log_unit(p.k * 0x1p-24f)), p.bits) << p.k;
}

// Every one of the 2^24 angles the kernel can produce.
TEST(CounterRngMath, SinCosApproxMatchesStd) {
  double max_err = 0;
  for (uint32_t t = 0; t < (1u << 24); ++t) {
    const double theta = 2.0 * M_PI * (t + 0.5) / 16777216.0;
    float c, s;
    fme::rng_detail::sincos_turn24(t, &c, &s);
    max_err = std::max({max_err, std::fabs(c - std::cos(theta)), std::fabs(s - std::sin(theta))});
  }
  std::printf("sincos_turn24: max abs err %.3g\n", max_err);
  EXPECT_LT(max_err, 1.5e-7);  // measured 8.4e-8
}

TEST(CounterRngNormal, PinnedValuesFromReference) {
  // Pinned from tests/fill/counter_rng_reference.py, an independent implementation of the definition in
  // counter_rng.h (Python integers, numpy float32, exactly rounded fma).
  const uint64_t key = fme::stream_key(42, "model.layers.0.mlp.up_proj.weight");
  const struct {
    uint64_t e;
    uint32_t bits;
  } pins[] = {{0ULL, 0xbf054775u}, {1ULL, 0xbf4e7b19u}, {2ULL, 0x3f8cfcaeu}, {3ULL, 0x3fc2f5dfu}, {4ULL, 0x3f9ba82fu},
              {5ULL, 0xbf8db737u}, {6ULL, 0xc0055fb5u}, {7ULL, 0xbf853b65u}, {15ULL, 0x3f114d6cu}, {16ULL, 0x400403edu},
              {31ULL, 0xbe601d8eu}, {32ULL, 0x404327a2u}, {63ULL, 0xbf6c13ceu}, {64ULL, 0xbf19d7bau},
              {1000003ULL, 0x40051a41u}, {8589934594ULL, 0x3f3caa21u}, {1099511627777ULL, 0x3e80f39fu},
              {2305843009213693951ULL, 0xbf9a8a28u}};
  for (const auto& p : pins) {
    EXPECT_EQ(bits_of(fme::normal_at(key, p.e)), p.bits) << "element " << p.e;
    float v[3];  // through fill_normal (the AVX-512 path where available), as the middle of a 3-element span
    fme::fill_normal(v, 1, 3, 3, static_cast<int64_t>(p.e) - (p.e > 0 ? 1 : 0), 0, key, 0.0f, 1.0f);
    EXPECT_EQ(bits_of(v[p.e > 0 ? 1 : 0]), p.bits) << "element " << p.e;
  }
}

TEST(CounterRngNormal, DeterministicAndKeyed) {
  std::vector<float> a(1000), b(1000), c(1000);
  fme::fill_normal(a.data(), 1, 1000, 1000, 0, 0, 99, 0.0f, 1.0f);
  fme::fill_normal(b.data(), 1, 1000, 1000, 0, 0, 99, 0.0f, 1.0f);
  fme::fill_normal(c.data(), 1, 1000, 1000, 0, 0, 100, 0.0f, 1.0f);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4));
  int same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == c[i];
  EXPECT_LT(same, 5);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(bits_of(a[i]), bits_of(fme::normal_at(99, i))) << i;
}

TEST(CounterRngNormal, MeanAndStdApplied) {
  std::vector<float> z(256), y(256);
  fme::fill_normal(z.data(), 1, 256, 256, 0, 0, 5, 0.0f, 1.0f);
  fme::fill_normal(y.data(), 1, 256, 256, 0, 0, 5, 3.0f, 0.02f);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(bits_of(y[i]), bits_of(std::fma(z[i], 0.02f, 3.0f)));
  // The reference's values with mean 0.5, std 0.1 (one rounding: fma(z, std, mean)).
  const uint32_t want[4] = {0x3ee5581cu, 0x3ed6b42eu, 0x3f1c3289u, 0x3f26fdf9u};
  const uint64_t key = fme::stream_key(42, "model.layers.0.mlp.up_proj.weight");
  float v[4];
  fme::fill_normal(v, 1, 4, 4, 0, 0, key, 0.5f, 0.1f);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(bits_of(v[i]), want[i]) << i;
}

TEST(CounterRngNormal, ShardInvariance) {
  const int R = 6, C = 10;
  const uint64_t key = fme::stream_key(3, "w");
  std::vector<float> whole(R * C);
  fme::fill_normal(whole.data(), 1, R * C, R * C, 0, 0, key, 0.0f, 0.02f);
  // As R rows of a 2-D fill.
  std::vector<float> rows(R * C);
  fme::fill_normal(rows.data(), R, C, C, 0, C, key, 0.0f, 0.02f);
  EXPECT_EQ(0, std::memcmp(whole.data(), rows.data(), whole.size() * 4));
  // Two dim-0 shards of 3 rows.
  for (int coord = 0; coord < 2; ++coord) {
    std::vector<float> shard(3 * C);
    fme::fill_normal(shard.data(), 3, C, C, coord * 3 * C, C, key, 0.0f, 0.02f);
    EXPECT_EQ(0, std::memcmp(shard.data(), whole.data() + coord * 3 * C, shard.size() * 4)) << coord;
  }
  // Two dim-1 shards of 5 columns, written contiguously and into a padded (strided) local buffer.
  for (int coord = 0; coord < 2; ++coord) {
    std::vector<float> shard(R * 5), padded(R * 8, -1.0f);
    fme::fill_normal(shard.data(), R, 5, 5, coord * 5, C, key, 0.0f, 0.02f);
    fme::fill_normal(padded.data(), R, 5, 8, coord * 5, C, key, 0.0f, 0.02f);
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < 5; ++j) {
        EXPECT_EQ(bits_of(shard[i * 5 + j]), bits_of(whole[i * C + coord * 5 + j]));
        EXPECT_EQ(bits_of(padded[i * 8 + j]), bits_of(whole[i * C + coord * 5 + j]));
      }
      for (int j = 5; j < 8; ++j) EXPECT_EQ(padded[i * 8 + j], -1.0f);  // stride gap untouched
    }
  }
}

TEST(CounterRngNormal, UnalignedSpansMatchWhole) {
  std::vector<float> whole(1000);
  fme::fill_normal(whole.data(), 1, 1000, 1000, 0, 0, 11, 0.0f, 1.0f);
  for (int64_t first : {0, 1, 3, 13, 63, 64, 65, 200}) {
    for (int64_t len : {1, 2, 5, 63, 64, 65, 130, 700}) {
      std::vector<float> part(len);
      fme::fill_normal(part.data(), 1, len, len, first, 0, 11, 0.0f, 1.0f);
      ASSERT_EQ(0, std::memcmp(part.data(), whole.data() + first, len * 4)) << first << "+" << len;
    }
  }
}

TEST(CounterRngNormal, ThreadInvariance) {
  // Large enough that 2 and 3 threads are really used; odd sizes so boundaries fall mid-row and mid-chunk.
  const int64_t R = 37, C = 40001, n = R * C;
  const uint64_t key = fme::stream_key(1, "t");
  std::vector<float> ref(n);
  fme::fill_normal(ref.data(), R, C, C, 0, C, key, 0.0f, 1.0f, 1);
  for (int threads : {2, 3, 0}) {
    std::vector<float> v(n);
    fme::fill_normal(v.data(), R, C, C, 0, C, key, 0.0f, 1.0f, threads);
    EXPECT_EQ(0, std::memcmp(v.data(), ref.data(), n * 4)) << threads << " threads";
    std::vector<float> flat(n);
    fme::fill_normal(flat.data(), 1, n, n, 0, 0, key, 0.0f, 1.0f, threads);
    EXPECT_EQ(0, std::memcmp(flat.data(), ref.data(), n * 4)) << threads << " threads, 1 row";
  }
  // A dim-1 shard with threads vs the same shard from the whole.
  std::vector<float> shard(R * 20000);
  fme::fill_normal(shard.data(), R, 20000, 20000, 20001, C, key, 0.0f, 1.0f, 3);
  for (int64_t i = 0; i < R; ++i) {
    ASSERT_EQ(0, std::memcmp(shard.data() + i * 20000, ref.data() + i * C + 20001, 20000 * 4)) << i;
  }
}

// Each x86 kernel against the portable one, bit for bit: fp32 and bf16, start indices that cut groups and
// chunks, and indices past 2^32.
void expect_kernel_matches_portable(fme::RngKernel kernel) {
  for (uint64_t first : {uint64_t{0}, uint64_t{5}, (uint64_t{1} << 34) + 3, (uint64_t{1} << 40) - 17}) {
    const int64_t n = 1 << 20;
    std::vector<float> a(n), b(n);
    std::vector<uint16_t> ha(n), hb(n);
    fme::fill_normal(a.data(), 1, n, n, first, 0, 77, 0.5f, 0.1f, 2, kernel);
    fme::fill_normal(b.data(), 1, n, n, first, 0, 77, 0.5f, 0.1f, 2, fme::RngKernel::kPortable);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), n * 4)) << first;
    fme::fill_normal_bf16(ha.data(), 1, n, n, first, 0, 77, 0.5f, 0.1f, 2, kernel);
    fme::fill_normal_bf16(hb.data(), 1, n, n, first, 0, 77, 0.5f, 0.1f, 2, fme::RngKernel::kPortable);
    EXPECT_EQ(0, std::memcmp(ha.data(), hb.data(), n * 2)) << first;
  }
}

TEST(CounterRngNormal, Avx512MatchesPortable) {
  if (!fme::rng_avx512_available()) GTEST_SKIP() << "CPU has no AVX-512 + VAES";
  expect_kernel_matches_portable(fme::RngKernel::kAvx512);
}

TEST(CounterRngNormal, AesNiMatchesPortable) {
  if (!fme::rng_aesni_available()) GTEST_SKIP() << "CPU has no AVX2 + FMA + AES-NI";
  expect_kernel_matches_portable(fme::RngKernel::kAesNi);
}

TEST(CounterRngNormal, Avx2VaesMatchesPortable) {
  if (!fme::rng_avx2_vaes_available()) GTEST_SKIP() << "CPU has no AVX2 + FMA + VAES";
  expect_kernel_matches_portable(fme::RngKernel::kAvx2Vaes);
}

TEST(CounterRngNormal, KernelNamesFollowTheCpu) {
  EXPECT_STREQ(fme::rng_kernel_name(fme::RngKernel::kPortable), "portable");
  const char* chosen = fme::rng_kernel_name();
  if (fme::rng_avx512_available()) EXPECT_STREQ(chosen, "avx512-vaes");
  else if (fme::rng_avx2_vaes_available()) EXPECT_STREQ(chosen, "avx2-vaes");
  else if (fme::rng_aesni_available()) EXPECT_STREQ(chosen, "avx2-aesni");
  else EXPECT_STREQ(chosen, "portable");
}

TEST(CounterRngNormal, Bf16IsRoundedFp32) {
  const int64_t n = 100003;
  std::vector<float> f(n);
  std::vector<uint16_t> h(n);
  fme::fill_normal(f.data(), 1, n, n, 17, 0, 9, 0.0f, 0.02f);
  fme::fill_normal_bf16(h.data(), 1, n, n, 17, 0, 9, 0.0f, 0.02f);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = bits_of(f[i]);
    // Round to nearest even, done independently: compare the two neighbours.
    const uint32_t down = u & 0xFFFF0000u, up = down + 0x10000u, rem = u & 0xFFFFu;
    const uint32_t want = rem > 0x8000u ? up : rem < 0x8000u ? down : (((down >> 16) & 1u) ? up : down);
    ASSERT_EQ(h[i], static_cast<uint16_t>(want >> 16)) << i;
  }
}

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

TEST(CounterRngNormal, Statistics10M) {
  const int64_t n = 10'000'000;
  std::vector<float> v(n);
  fme::fill_normal(v.data(), 1, n, n, 0, 0, fme::stream_key(2024, "stats"), 0.0f, 1.0f);
  double sum = 0, sum2 = 0, sum4 = 0;
  int64_t beyond2 = 0;
  const double pts[] = {-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0};
  int64_t below[9] = {};
  for (float x : v) {
    sum += x;
    sum2 += double{x} * x;
    sum4 += double{x} * x * x * x;
    beyond2 += std::fabs(x) > 2.0f;
    for (int k = 0; k < 9; ++k) below[k] += x < pts[k];
  }
  const double mean = sum / n, var = sum2 / n - mean * mean, kurt = sum4 / n / (var * var);
  EXPECT_LT(std::fabs(mean), 5.0 / std::sqrt(double(n)));          // 5 sigma of the sample mean
  EXPECT_LT(std::fabs(var - 1.0), 5.0 * std::sqrt(2.0 / n));        // sd of sample variance is sqrt(2/n)
  EXPECT_LT(std::fabs(kurt - 3.0), 0.01);                           // sd of sample kurtosis ~ sqrt(24/n)
  const double p2 = 2.0 * normal_cdf(-2.0);                          // 4.550%
  EXPECT_LT(std::fabs(double(beyond2) / n - p2), 5.0 * std::sqrt(p2 * (1 - p2) / n));
  for (int k = 0; k < 9; ++k) {
    const double p = normal_cdf(pts[k]), got = double(below[k]) / n;
    EXPECT_LT(std::fabs(got - p), 5.0 * std::sqrt(p * (1 - p) / n) + 1e-7) << "CDF at " << pts[k];
  }
  // The 24-bit radius uniform bounds |z| by sqrt(48 ln 2).
  const float mx = *std::max_element(v.begin(), v.end()), mn = *std::min_element(v.begin(), v.end());
  EXPECT_LE(mx, 5.77f);
  EXPECT_GE(mn, -5.77f);
  EXPECT_GT(mx, 4.5f);
}

// fresh_memory only changes how page faults are taken: the same values, whatever the alignment, thread
// count or layout (a strided block skips the populate and must still be right).
TEST(CounterRngNormal, FreshMemoryFillMatches) {
  const int64_t n = (int64_t{5} << 20) / 4 + 77;
  const uint64_t key = fme::stream_key(8, "fresh");
  std::vector<float> ref(n + 64);
  fme::fill_normal(ref.data(), 1, n + 64, n + 64, 0, 0, key, 0.0f, 0.02f, 1);
  for (int threads : {1, 2, 3}) {
    for (int64_t offset : {0, 3, 1024 + 5}) {  // 1024 floats = one page: an unaligned and a page-aligned start
      fme::FreshBuffer buf(static_cast<size_t>(n + offset) * 4);
      float* out = static_cast<float*>(buf.data()) + offset;
      fme::fill_normal(out, 1, n, n, 17, 0, key, 0.0f, 0.02f, threads, fme::RngKernel::kAuto, /*fresh_memory=*/true);
      ASSERT_EQ(0, std::memcmp(out, ref.data() + 17, n * 4)) << threads << " threads, offset " << offset;
      const auto* bytes = static_cast<const unsigned char*>(buf.data());
      for (int64_t i = 0; i < offset * 4; ++i) ASSERT_EQ(bytes[i], 0) << "wrote before the block";
    }
  }
  // Strided rows (padding between them untouched) and bf16.
  const int64_t R = 200, C = 5000, stride = 5003;  // R * C < n: within ref
  fme::FreshBuffer strided(static_cast<size_t>(R * stride) * 4);
  float* s = static_cast<float*>(strided.data());
  fme::fill_normal(s, R, C, stride, 0, C, key, 0.0f, 0.02f, 2, fme::RngKernel::kAuto, true);
  for (int64_t i = 0; i < R; ++i) {
    ASSERT_EQ(0, std::memcmp(s + i * stride, ref.data() + i * C, C * 4)) << i;
    for (int64_t j = C; j < stride && i + 1 < R; ++j) ASSERT_EQ(s[i * stride + j], 0.0f);
  }
  fme::FreshBuffer h(static_cast<size_t>(n) * 2);
  std::vector<uint16_t> href(n);
  fme::fill_normal_bf16(href.data(), 1, n, n, 0, 0, key, 0.0f, 0.02f, 2);
  fme::fill_normal_bf16(static_cast<uint16_t*>(h.data()), 1, n, n, 0, 0, key, 0.0f, 0.02f, 2, fme::RngKernel::kAuto, true);
  EXPECT_EQ(0, std::memcmp(h.data(), href.data(), n * 2));
}

// A batch equals its blocks filled one by one, whatever the thread count: shares cut across blocks of both
// dtypes, dim-0 and dim-1 shards, empty blocks. A bad block is refused before anything is written.
TEST(CounterRngNormal, BatchEqualsBlockByBlock) {
  const uint64_t k1 = fme::stream_key(1, "a"), k2 = fme::stream_key(1, "b"), k3 = fme::stream_key(1, "c");
  std::vector<float> a(70001), c(40 * 300), want_a(a.size()), want_c(c.size());
  std::vector<uint16_t> b(3 * 50000), want_b(b.size());
  std::vector<float> empty(1, -1.0f);
  fme::fill_normal(want_a.data(), 1, 70001, 70001, 5, 0, k1, 0.0f, 0.02f, 1);
  fme::fill_normal_bf16(want_b.data(), 3, 50000, 50000, 100000, 50000, k2, 1.0f, 0.5f, 1);  // rows 2-4 of a [R, 50000]
  fme::fill_normal(want_c.data(), 40, 300, 300, 300, 600, k3, 0.0f, 1.0f, 1);               // columns 300-599 of [40, 600]
  for (int threads : {1, 2, 3, 7}) {
    std::fill(a.begin(), a.end(), 0.0f);
    std::fill(b.begin(), b.end(), 0);
    std::fill(c.begin(), c.end(), 0.0f);
    fme::NormalFill fa{a.data(), false, 1, 70001, 70001, 5, 0, k1, 0.0f, 0.02f};
    fme::NormalFill fe{empty.data(), false, 0, 10, 10, 0, 10, k1, 0.0f, 1.0f};
    fme::NormalFill fb{b.data(), true, 3, 50000, 50000, 100000, 50000, k2, 1.0f, 0.5f};
    fme::NormalFill fc{c.data(), false, 40, 300, 300, 300, 600, k3, 0.0f, 1.0f};
    fme::fill_normal_batch({fa, fe, fb, fc}, threads);
    EXPECT_EQ(0, std::memcmp(a.data(), want_a.data(), a.size() * 4)) << threads;
    EXPECT_EQ(0, std::memcmp(b.data(), want_b.data(), b.size() * 2)) << threads;
    EXPECT_EQ(0, std::memcmp(c.data(), want_c.data(), c.size() * 4)) << threads;
    EXPECT_EQ(empty[0], -1.0f);
  }
  std::fill(a.begin(), a.end(), 0.0f);
  fme::NormalFill good{a.data(), false, 1, 70001, 70001, 0, 0, k1, 0.0f, 1.0f};
  fme::NormalFill bad{c.data(), false, 40, 300, 200, 0, 600, k3, 0.0f, 1.0f};  // out stride < row length
  EXPECT_THROW(fme::fill_normal_batch({good, bad}, 2), fme::ShapeError);
  EXPECT_EQ(a[0], 0.0f);
}

TEST(CounterRngFreshMemory, PopulateForWriteGivesZeroedWritablePages) {
  fme::FreshBuffer buf(size_t{3} << 20);
  auto* p = static_cast<unsigned char*>(buf.data());
  // Unaligned ends: only whole pages inside are populated; the call never writes.
  const bool ok = fme::populate_for_write(p + 100, buf.size() - 200);
  std::printf("MADV_POPULATE_WRITE %s\n", ok ? "supported" : "not supported (kernel < 5.14)");
  for (size_t i = 0; i < buf.size(); i += 997) ASSERT_EQ(p[i], 0);
  std::memset(p, 0xAB, buf.size());
  EXPECT_EQ(p[buf.size() - 1], 0xAB);
  EXPECT_TRUE(fme::populate_for_write(p, 0));  // empty range: nothing to do
}

// Every page of [p, p + bytes) is resident (mincore), the proof that a first-touch method took the faults.
bool all_resident(const void* p, size_t bytes) {
  const size_t page = 4096;
  std::vector<unsigned char> vec((bytes + page - 1) / page);
  if (::mincore(const_cast<void*>(p), bytes, vec.data()) != 0) return false;
  return std::all_of(vec.begin(), vec.end(), [](unsigned char v) { return (v & 1) != 0; });
}

TEST(CounterRngFreshMemory, FirstTouchMethodsMakeEveryPageResidentAndZero) {
  for (auto method : {fme::TouchMethod::kWrite, fme::TouchMethod::kPopulate}) {
    // A ragged size (not a whole number of pages) split over 3 threads.
    const size_t bytes = (size_t{5} << 20) + 12345;
    fme::FreshBuffer buf(bytes);
    EXPECT_FALSE(all_resident(buf.data(), bytes));  // fresh: nothing faulted in yet
    fme::first_touch(buf.data(), bytes, 3, method);
    EXPECT_TRUE(all_resident(buf.data(), bytes)) << static_cast<int>(method);
    const auto* c = static_cast<const unsigned char*>(buf.data());
    for (size_t i = 0; i < bytes; i += 4093) ASSERT_EQ(c[i], 0);
    EXPECT_EQ(c[bytes - 1], 0);
  }
}

TEST(CounterRngFreshMemory, PageProbeFaultsInOnlyItsRegionsAndChoosesByItsTimings) {
  // Large enough to probe: the first 2 x kProbeBytes are made resident (4 KiB, then huge pages), nothing else.
  const size_t bytes = fme::FreshBuffer::kProbeMinBytes + 12345;
  fme::FreshBuffer buf(bytes, fme::PageSize::kProbe);
  ASSERT_TRUE(buf.probe_ran());
  EXPECT_GT(buf.probe_small_seconds(), 0.0);
  EXPECT_GT(buf.probe_huge_seconds(), 0.0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.data()) % (2u << 20), 0u);
  const auto* c = static_cast<const unsigned char*>(buf.data());
  const size_t probed = 2 * fme::FreshBuffer::kProbeBytes;
  EXPECT_TRUE(all_resident(c, probed));
  EXPECT_FALSE(all_resident(c + probed, 1 << 20));
  // The rest gets huge pages only when they were at least 1.25x faster (THP may also be off: then never).
  if (buf.huge_pages()) {
    EXPECT_LE(buf.probe_huge_seconds() * 1.25, buf.probe_small_seconds());
  }
  std::printf("page probe: 4 KiB %.1f ms, huge %.1f ms -> %s\n", buf.probe_small_seconds() * 1e3,
              buf.probe_huge_seconds() * 1e3, buf.huge_pages() ? "huge" : "4 KiB");
  for (size_t i = 0; i < probed; i += 4093) ASSERT_EQ(c[i], 0);
  std::memset(static_cast<char*>(buf.data()) + bytes - 4096, 7, 4096);  // the whole mapping is writable
  EXPECT_EQ(c[bytes - 1], 7);

  fme::FreshBuffer small(size_t{64} << 20, fme::PageSize::kProbe);  // below kProbeMinBytes: 4 KiB, no probe
  EXPECT_FALSE(small.probe_ran());
  EXPECT_FALSE(small.huge_pages());
  EXPECT_FALSE(all_resident(small.data(), small.size()));
  fme::FreshBuffer huge(size_t{8} << 20, fme::PageSize::kHuge);
  EXPECT_TRUE(huge.huge_pages());
}

TEST(CounterRngNormal, RejectsBadShapes) {
  float x[4];
  EXPECT_THROW(fme::fill_normal(x, -1, 4, 4, 0, 4, 1, 0, 1), fme::ShapeError);
  EXPECT_THROW(fme::fill_normal(x, 2, 4, 2, 0, 4, 1, 0, 1), fme::ShapeError);
  EXPECT_THROW(fme::fill_normal(x, 1, 4, 4, -3, 4, 1, 0, 1), fme::ShapeError);
  fme::fill_normal(x, 0, 4, 4, 0, 4, 1, 0, 1);  // empty is fine
}

TEST(CounterRngFreshMemory, FirstTouchZeroesAndAligns) {
  for (bool huge : {false, true}) {
    fme::FreshBuffer buf(size_t{9} << 20, huge);
    ASSERT_NE(buf.data(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.data()) % 64, 0u);
    if (huge) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.data()) % (2u << 20), 0u);
    }
    fme::first_touch(buf.data(), buf.size(), 3);
    const auto* p = static_cast<const unsigned char*>(buf.data());
    for (size_t i = 0; i < buf.size(); i += 4093) ASSERT_EQ(p[i], 0);
    fme::fill_normal(static_cast<float*>(buf.data()), 1, buf.size() / 4, buf.size() / 4, 0, 0, 1, 0, 1);
    fme::FreshBuffer moved = std::move(buf);
    EXPECT_EQ(buf.data(), nullptr);
    EXPECT_EQ(moved.size(), size_t{9} << 20);
  }
}

}  // namespace

// Counter-based random initialisation of (sharded) parameters: every element's value is a pure function of
// (seed, parameter path, element index in the FULL tensor), so a model materialised shard by shard on any
// tensor-parallel mesh, with any thread count, on any x86-64 machine (AVX-512 or not), is bit-identical to the
// unsharded one. Torch-free. Leaves out uniform/truncated/constant fills and anything that knows about
// parameter shapes or meshes: callers translate a shard into (rows, strides, first global index).
//
// Exact definition (enough to reimplement it elsewhere):
//   stream_key(seed, path):
//     h   = FNV-1a 64 of the path's bytes (offset basis 0xcbf29ce484222325, prime 0x100000001b3)
//     key = mix(mix(seed) ^ h), where mix(x) is SplitMix64's output function:
//           z = x + 0x9e3779b97f4a7c15; z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
//           z = (z ^ (z >> 27)) * 0x94d049bb133111eb; return z ^ (z >> 31)
//   Block b (a uint64) of the stream: (x0, x1, x2, x3) = AES-128 (FIPS-197) of the 16 bytes LE64(b) || 0^64
//     under the key LE64(key) || LE64(mix(key)), read as four little-endian uint32 (AES in counter mode).
//   Element e (0-based index in the row-major global tensor) lies in group g = e >> 5, slot j = e & 31.
//   The group's 16 Box-Muller pairs p = j & 15 take their words from block b = 8g + (p & 7): (x0, x1) if
//   p < 8, (x2, x3) otherwise; slot j < 16 holds the pair's cosine normal, j >= 16 its sine normal. For (xu, xt):
//       u     = ((xu >> 8) + 1) * 2^-24                     (in [2^-24, 1]; so |z| <= sqrt(48 ln 2) = 5.77)
//       r     = sqrtf(-2 * log_unit(u))                      (log: 32-entry table + log1p polynomial, with fma)
//       t     = xt >> 8; s = (t + 2^21) mod 2^24; k = s >> 22
//       phi   = float(2 * (s mod 2^22) + 1 - 2^22) * 1.8725351414619643e-7f   (= (pi/2)/2^23; |phi| < pi/4)
//       (c, s') = Cephes cosf/sinf polynomials of phi; theta = k*pi/2 + phi = 2*pi*(t + 0.5)/2^24
//       z_cos = r * cos(theta), z_sin = r * sin(theta), cos/sin(theta) from (c, s') by quadrant k
//     value = fma(z, std, mean)
//   Every step is float (binary32) arithmetic; the fused multiply-adds and their exact order are in
//   counter_rng_kernel.h (pair_normal, the scalar definition). bf16 output = fp32 value rounded to nearest even.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace fme {

// FNV-1a of `path` mixed with `seed` by SplitMix64 (definition above). Distinct paths give independent streams.
uint64_t stream_key(uint64_t seed, std::string_view path);

// The fp32 value of global element `e` of the stream `key` (unit normal before mean/std). Scalar; for tests
// and reimplementers. Equals what fill_normal writes.
float normal_at(uint64_t key, uint64_t e, float mean = 0.0f, float std = 1.0f);

// Which code path runs the kernel. kAuto picks the fastest the CPU has: AVX-512 with VAES, else AVX2 + FMA with
// VAES (AES two blocks a ymm), else AVX2 + FMA with AES-NI (one block an xmm), else the portable one (byte-wise
// AES, libm fma). All give bit-identical output; forcing one is for tests and benchmarks (a kernel the CPU
// lacks throws fme::UnsupportedError). Speeds: bench_memory_floor prints them per kernel.
enum class RngKernel { kAuto, kPortable, kAesNi, kAvx2Vaes, kAvx512 };
bool rng_avx512_available();
bool rng_avx2_vaes_available();
bool rng_aesni_available();
// The kernel `kernel` resolves to on this CPU: "avx512-vaes", "avx2-vaes", "avx2-aesni" or "portable".
const char* rng_kernel_name(RngKernel kernel = RngKernel::kAuto);

// Fills a 2-D block of a larger row-major global tensor with Normal(mean, std):
//   out[i * out_row_stride + j] = value of global element (global_first_index + i * global_row_stride + j)
//   for i in [0, n_rows), j in [0, row_len).
// Whole tensor: n_rows = 1, row_len = numel, global_first_index = 0 (global_row_stride unused).
// Dim-0 shard of [R, C]: n_rows = R/tp, row_len = C, global_row_stride = C, global_first_index = coord*(R/tp)*C.
// Dim-1 shard of [R, C]: n_rows = R, row_len = C/tp, global_row_stride = C, global_first_index = coord*(C/tp).
// The local elements are split into contiguous ranges over n_threads std::threads (0 = hardware
// concurrency; small fills run inline), so each thread first-touches its own pages. With fresh_memory (the
// output is never-touched anonymous memory, and rows are contiguous), each thread takes the page faults of
// its next 1 MiB in one populate_for_write call just before writing it, while those pages are still in cache.
// Throws fme::ShapeError on negative sizes or indices.
void fill_normal(float* out, int64_t n_rows, int64_t row_len, int64_t out_row_stride, int64_t global_first_index,
                 int64_t global_row_stride, uint64_t key, float mean, float std, int n_threads = 0,
                 RngKernel kernel = RngKernel::kAuto, bool fresh_memory = false);
// Same, writing bf16 bits (round-to-nearest-even of the fp32 value).
void fill_normal_bf16(uint16_t* out, int64_t n_rows, int64_t row_len, int64_t out_row_stride,
                      int64_t global_first_index, int64_t global_row_stride, uint64_t key, float mean, float std,
                      int n_threads = 0, RngKernel kernel = RngKernel::kAuto, bool fresh_memory = false);

// One block for fill_normal_batch: the arguments of fill_normal (bf16: fill_normal_bf16) as a value.
struct NormalFill {
  void* out = nullptr;  // float*, or uint16_t* when bf16
  bool bf16 = false;
  int64_t n_rows = 0, row_len = 0, out_row_stride = 0, global_first_index = 0, global_row_stride = 0;
  uint64_t key = 0;
  float mean = 0.0f, std = 1.0f;
};
// Fills every block, as fill_normal would one by one, but splits the batch's elements (laid end to end)
// into one contiguous share per thread, with the threads started once for the whole batch: a model's many
// small tensors do not each pay a thread start. Throws fme::ShapeError on a bad block before writing any.
void fill_normal_batch(const std::vector<NormalFill>& fills, int n_threads = 0, RngKernel kernel = RngKernel::kAuto,
                       bool fresh_memory = false);

namespace rng_detail {
// The table-driven float log used by the kernel, for x in [2^-24, 1]; exposed so tests can bound its error.
float log_unit(float x);
// The kernel's scalar AES-128 on one block, and block b of a stream (definition above); for tests.
void aes128_encrypt_block(const uint8_t key[16], const uint8_t in[16], uint8_t out[16]);
void stream_block(uint64_t key, uint64_t b, uint32_t out[4]);
// cos and sin of 2*pi*(t + 0.5)/2^24 for t in [0, 2^24) as the kernel computes them.
void sincos_turn24(uint32_t t, float* c, float* s);
// Single-threaded spans: out[i] = element e0 + i, i in [0, n). Defined per kernel TU.
void normal_span_portable(float* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std);
void normal_span_bf16_portable(uint16_t* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std);
void normal_span_aesni(float* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std);
void normal_span_bf16_aesni(uint16_t* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std);
void normal_span_avx2_vaes(float* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std);
void normal_span_bf16_avx2_vaes(uint16_t* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std);
void normal_span_avx512(float* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std);
void normal_span_bf16_avx512(uint16_t* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std);
}  // namespace rng_detail

}  // namespace fme

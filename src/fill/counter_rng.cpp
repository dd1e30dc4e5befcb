// counter_rng: stream keys, the portable build of the normal kernel (AES-128 written out), the runtime choice
// of the AVX2 + AES-NI, AVX2 + VAES or AVX-512 + VAES build, and the threaded fills. Compiled with -ffp-contract=off -fno-math-errno (see
// src/util/CMakeLists.txt) so the portable kernel matches the AVX-512 one bit for bit. Leaves out the kernel
// source (counter_rng_kernel.h) and the x86 translation units (counter_rng_aesni.cpp, counter_rng_avx2_vaes.cpp,
// counter_rng_avx512.cpp).
#include "fill/counter_rng.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "fill/counter_rng_kernel.h"
#include "util/cpu_features.h"
#include "util/error.h"
#include "fill/fresh_memory.h"

namespace fme {
namespace {


// Below this many elements per thread, starting a thread costs more than it saves.
constexpr int64_t kMinElementsPerThread = int64_t{1} << 16;

using SpanF32 = void (*)(float*, int64_t, uint64_t, uint64_t, float, float);
using SpanBf16 = void (*)(uint16_t*, int64_t, uint64_t, uint64_t, float, float);

void check_block(const NormalFill& f) {
  if (f.n_rows < 0 || f.row_len < 0 || f.global_first_index < 0 || (f.n_rows > 1 && f.global_row_stride < f.row_len) ||
      (f.n_rows > 1 && f.out_row_stride < f.row_len) || (f.out == nullptr && f.n_rows * f.row_len > 0)) {
    throw ShapeError("fill_normal: bad block (n_rows " + std::to_string(f.n_rows) + ", row_len " +
                     std::to_string(f.row_len) + ", out_row_stride " + std::to_string(f.out_row_stride) +
                     ", global_first_index " + std::to_string(f.global_first_index) + ", global_row_stride " +
                     std::to_string(f.global_row_stride) + ")");
  }
}

// Local flat range [lo, hi) of block f, walked row segment by row segment. Fresh contiguous output is
// populated 1 MiB at a time just before it is written, while its zeroed lines are still in cache.
template <typename T>
void fill_range(const NormalFill& f, int64_t lo, int64_t hi, bool fresh_memory,
                void (*span)(T*, int64_t, uint64_t, uint64_t, float, float)) {
  T* out = static_cast<T*>(f.out);
  const bool populate = fresh_memory && (f.n_rows == 1 || f.out_row_stride == f.row_len);
  const int64_t step = populate ? int64_t{1 << 20} / static_cast<int64_t>(sizeof(T)) : hi - lo;
  for (int64_t a = lo; a < hi; a += step) {
    const int64_t b = std::min(hi, a + step);
    if (populate) populate_for_write(out + a, static_cast<size_t>(b - a) * sizeof(T));
    for (int64_t x = a; x < b;) {
      const int64_t i = x / f.row_len, j = x % f.row_len;
      const int64_t len = std::min(f.row_len - j, b - x);
      const int64_t g = f.global_first_index + i * f.global_row_stride + j;
      span(out + i * f.out_row_stride + j, len, static_cast<uint64_t>(g), f.key, f.mean, f.std);
      x += len;
    }
  }
}

// The kernel `kernel` names (kAuto: the fastest this CPU has), as its two span functions.
struct Spans {
  SpanF32 f32;
  SpanBf16 bf16;
};
Spans pick_kernel(RngKernel kernel) {
  const Spans portable{rng_detail::normal_span_portable, rng_detail::normal_span_bf16_portable};
#if defined(FME_RNG_HAVE_X86_KERNELS)
  const Spans aesni{rng_detail::normal_span_aesni, rng_detail::normal_span_bf16_aesni};
  const Spans avx2_vaes{rng_detail::normal_span_avx2_vaes, rng_detail::normal_span_bf16_avx2_vaes};
  const Spans avx512{rng_detail::normal_span_avx512, rng_detail::normal_span_bf16_avx512};
#else  // no x86 kernel translation units on this target (rng_*_available() are false)
  const Spans aesni = portable, avx2_vaes = portable, avx512 = portable;
#endif
  switch (kernel) {
    case RngKernel::kPortable:
      return portable;
    case RngKernel::kAesNi:
      if (!rng_aesni_available()) throw UnsupportedError("fill_normal: AES-NI kernel requested, CPU lacks AVX2/FMA/AES");
      return aesni;
    case RngKernel::kAvx2Vaes:
      if (!rng_avx2_vaes_available()) throw UnsupportedError("fill_normal: AVX2+VAES kernel requested, CPU lacks AVX2/FMA/VAES");
      return avx2_vaes;
    case RngKernel::kAvx512:
      if (!rng_avx512_available()) throw UnsupportedError("fill_normal: AVX-512 kernel requested, CPU lacks it");
      return avx512;
    case RngKernel::kAuto:
      break;
  }
  return rng_avx512_available() ? avx512 : rng_avx2_vaes_available() ? avx2_vaes : rng_aesni_available() ? aesni : portable;
}

}  // namespace

bool rng_aesni_available() {
#if defined(FME_RNG_HAVE_X86_KERNELS)
  const CpuFeatures& f = cpu_features();
  return f.avx2 && f.fma && f.aes;
#else
  return false;
#endif
}

bool rng_avx2_vaes_available() {
#if defined(FME_RNG_HAVE_X86_KERNELS)
  const CpuFeatures& f = cpu_features();
  return f.avx2 && f.fma && f.aes && f.vaes;
#else
  return false;
#endif
}

bool rng_avx512_available() {
#if defined(FME_RNG_HAVE_X86_KERNELS)
  const CpuFeatures& f = cpu_features();
  return f.avx512 && f.aes && f.vaes;
#else
  return false;
#endif
}

const char* rng_kernel_name(RngKernel kernel) {
  switch (kernel) {
    case RngKernel::kPortable: return "portable";
    case RngKernel::kAesNi: return "avx2-aesni";
    case RngKernel::kAvx2Vaes: return "avx2-vaes";
    case RngKernel::kAvx512: return "avx512-vaes";
    case RngKernel::kAuto: break;
  }
  return rng_avx512_available()      ? "avx512-vaes"
         : rng_avx2_vaes_available() ? "avx2-vaes"
         : rng_aesni_available()     ? "avx2-aesni"
                                     : "portable";
}

uint64_t stream_key(uint64_t seed, std::string_view path) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : path) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return rng_kernel::mix64(rng_kernel::mix64(seed) ^ h);
}

float normal_at(uint64_t key, uint64_t e, float mean, float std) {
  float v;
  rng_detail::normal_span_portable(&v, 1, e, key, mean, std);
  return v;
}

namespace rng_detail {

float log_unit(float x) { return rng_kernel::log_unit(x); }
void aes128_encrypt_block(const uint8_t key[16], const uint8_t in[16], uint8_t out[16]) {
  rng_kernel::aes128_encrypt(rng_kernel::aes128_expand(key), in, out);
}
void stream_block(uint64_t key, uint64_t b, uint32_t out[4]) {
  rng_kernel::aes_ctr_block(rng_kernel::stream_aes_key(key), b, out);
}
void sincos_turn24(uint32_t t, float* c, float* s) { rng_kernel::sincos_turn24(t, *c, *s); }

void normal_span_portable(float* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std) {
  rng_kernel::normal_span(out, n, e0, key, mean, std);
}
void normal_span_bf16_portable(uint16_t* out, int64_t n, uint64_t e0, uint64_t key, float mean, float std) {
  rng_kernel::normal_span(out, n, e0, key, mean, std);
}

}  // namespace rng_detail

void fill_normal_batch(const std::vector<NormalFill>& fills, int n_threads, RngKernel kernel, bool fresh_memory) {
  const Spans spans = pick_kernel(kernel);
  // Work items: each block cut into pieces of at most kPiece elements (1 MiB of fp32), handed out one at a
  // time from a shared counter. Dynamic, not one fixed share per thread: on a VM one vCPU may start the work
  // milliseconds late (waking it) or run slower (its host neighbours), and a fixed split waits for it.
  constexpr int64_t kPiece = int64_t{1} << 18;
  struct Piece {
    size_t block;
    int64_t lo, hi;
  };
  std::vector<Piece> pieces;
  int64_t total = 0;
  for (size_t k = 0; k < fills.size(); ++k) {
    check_block(fills[k]);
    const int64_t n = fills[k].n_rows * fills[k].row_len;
    for (int64_t lo = 0; lo < n; lo += kPiece) pieces.push_back({k, lo, std::min(n, lo + kPiece)});
    total += n;
  }
  if (total == 0) return;
  int64_t threads = n_threads > 0 ? n_threads : static_cast<int64_t>(std::thread::hardware_concurrency());
  threads = std::clamp<int64_t>(std::min(threads, total / kMinElementsPerThread), 1, 1024);

  std::atomic<size_t> next{0};
  auto run = [&] {
    for (size_t i = next.fetch_add(1, std::memory_order_relaxed); i < pieces.size();
         i = next.fetch_add(1, std::memory_order_relaxed)) {
      const Piece& p = pieces[i];
      const NormalFill& f = fills[p.block];
      if (f.bf16) fill_range<uint16_t>(f, p.lo, p.hi, fresh_memory, spans.bf16);
      else fill_range<float>(f, p.lo, p.hi, fresh_memory, spans.f32);
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads - 1));
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(run);
  run();
  for (auto& th : pool) th.join();
}

void fill_normal(float* out, int64_t n_rows, int64_t row_len, int64_t out_row_stride, int64_t global_first_index,
                 int64_t global_row_stride, uint64_t key, float mean, float std, int n_threads, RngKernel kernel,
                 bool fresh_memory) {
  fill_normal_batch({{out, false, n_rows, row_len, out_row_stride, global_first_index, global_row_stride, key, mean, std}},
                    n_threads, kernel, fresh_memory);
}

void fill_normal_bf16(uint16_t* out, int64_t n_rows, int64_t row_len, int64_t out_row_stride,
                      int64_t global_first_index, int64_t global_row_stride, uint64_t key, float mean, float std,
                      int n_threads, RngKernel kernel, bool fresh_memory) {
  fill_normal_batch({{out, true, n_rows, row_len, out_row_stride, global_first_index, global_row_stride, key, mean, std}},
                    n_threads, kernel, fresh_memory);
}

}  // namespace fme

// bench_memory_floor: how fast can fresh parameter memory be created on this machine? Measures, for one byte
// count and thread count: parallel first-touch of a fresh mmap (4 KiB pages and MADV_HUGEPAGE), memset into
// fresh and into warm memory, and fill_normal (fp32 and bf16) into fresh and warm memory; prints one JSON
// line per measurement, with the fresh fills' ratio to first-touch of the same size (the budget is <= 1.25).
// Leaves out NUMA effects and file-backed memory.
// Usage: bench_memory_floor [bytes=2GiB] [threads=all] [repeats=3] [--cold] (--help); every line names the CPU,
// its ISA features and the RNG kernel each fill ran.
// --cold sleeps 3 s before each fresh repeat: on a VM with free page reporting (virtio-balloon) freed memory
// goes back to the host within ~2 s, and the next first touch faults in host memory as well. It prints only
// the first-touch floors (4 KiB and huge pages) and the fp32 fill, the numbers that decide prepare's arena.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "fill/counter_rng.h"
#include "util/cpu_features.h"
#include "util/json.h"
#include "fill/fresh_memory.h"

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Parallel memset: each thread a contiguous chunk, as first_touch and fill_normal split the work.
void par_memset(void* p, size_t bytes, int threads) {
  std::vector<std::thread> pool;
  auto* c = static_cast<char*>(p);
  for (int t = 0; t < threads; ++t) {
    const size_t lo = bytes * t / threads, hi = bytes * (t + 1) / threads;
    pool.emplace_back([=] { std::memset(c + lo, 0, hi - lo); });
  }
  for (auto& th : pool) th.join();
}

enum class Op { kFirstTouch, kPopulate, kMemset, kFillF32, kFillF32Fresh, kFillBf16 };
bool g_cold = false;

void run_op(Op op, void* p, size_t bytes, int threads, fme::RngKernel kernel) {
  switch (op) {
    case Op::kFirstTouch:
      fme::first_touch(p, bytes, threads);
      break;
    case Op::kPopulate:
      fme::first_touch(p, bytes, threads, fme::TouchMethod::kPopulate);
      break;
    case Op::kMemset:
      par_memset(p, bytes, threads);
      break;
    case Op::kFillF32:
      fme::fill_normal(static_cast<float*>(p), 1, int64_t(bytes / 4), int64_t(bytes / 4), 0, 0, 1234, 0.0f, 0.02f,
                       threads, kernel);
      break;
    case Op::kFillF32Fresh:  // as prepare: faults taken in batches just ahead of the writes
      fme::fill_normal(static_cast<float*>(p), 1, int64_t(bytes / 4), int64_t(bytes / 4), 0, 0, 1234, 0.0f, 0.02f,
                       threads, kernel, /*fresh_memory=*/true);
      break;
    case Op::kFillBf16:
      fme::fill_normal_bf16(static_cast<uint16_t*>(p), 1, int64_t(bytes / 2), int64_t(bytes / 2), 0, 0, 1234, 0.0f,
                            0.02f, threads, kernel);
      break;
  }
}

const char* op_name(Op op) {
  switch (op) {
    case Op::kFirstTouch: return "first_touch";
    case Op::kPopulate: return "first_touch_populate";
    case Op::kMemset: return "memset";
    case Op::kFillF32: return "fill_normal_f32";
    case Op::kFillF32Fresh: return "fill_normal_f32_populate";
    case Op::kFillBf16: return "fill_normal_bf16";
  }
  return "?";
}

// Best-of-`repeats` seconds; fresh = new mapping each time (mmap/munmap outside the timed region).
double time_op(Op op, size_t bytes, int threads, bool fresh, bool huge, int repeats,
               fme::RngKernel kernel = fme::RngKernel::kAuto) {
  double best = 1e30;
  fme::FreshBuffer warm;
  if (!fresh) {
    warm = fme::FreshBuffer(bytes, huge);
    par_memset(warm.data(), bytes, threads);
  }
  for (int r = 0; r < repeats; ++r) {
    if (fresh && g_cold) std::this_thread::sleep_for(std::chrono::seconds(3));
    fme::FreshBuffer buf;
    if (fresh) buf = fme::FreshBuffer(bytes, huge);
    void* p = fresh ? buf.data() : warm.data();
    const double t0 = now_s();
    run_op(op, p, bytes, threads, kernel);
    best = std::min(best, now_s() - t0);
  }
  return best;
}

void emit(const char* what, Op op, bool fresh, bool huge, size_t bytes, int threads, double s, double floor_s,
          const char* kernel = "auto") {
  const double gbs = bytes / s / 1e9;
  std::printf("{\"op\":\"%s\",\"memory\":\"%s\",\"hugepages\":%s,\"kernel\":\"%s\",\"bytes\":%zu,\"threads\":%d,"
              "\"seconds\":%.4f,\"GB_per_s\":%.3f",
              op_name(op), fresh ? "fresh" : "warm", huge ? "true" : "false", kernel, bytes, threads, s, gbs);
  if (op == Op::kFillF32 || op == Op::kFillF32Fresh || op == Op::kFillBf16) {
    const double elems = double(bytes) / (op == Op::kFillBf16 ? 2 : 4);
    std::printf(",\"Gelem_per_s\":%.3f,\"Gelem_per_s_per_thread\":%.3f", elems / s / 1e9, elems / s / 1e9 / threads);
  }
  if (floor_s > 0) std::printf(",\"ratio_vs_first_touch\":%.3f", s / floor_s);
  std::printf(",\"what\":\"%s\"}\n", what);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_memory_floor: first-touch of fresh memory vs memset vs the counter-RNG fills prepare uses"};
  size_t bytes = size_t{2} << 30;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  int repeats = 3;
  app.add_option("bytes", bytes, "bytes per measurement (default 2 GiB)");
  app.add_option("threads", threads, "threads (default: all cores)")->check(CLI::PositiveNumber);
  app.add_option("repeats", repeats, "best of this many (default 3)")->check(CLI::PositiveNumber);
  app.add_flag("--cold", g_cold, "sleep 3 s before each fresh repeat (freed memory goes back to the host first)");
  CLI11_PARSE(app, argc, argv);
  fme::Json info{{"info", "bench_memory_floor"}, {"bytes", bytes}, {"threads", threads}, {"repeats", repeats},
                 {"rng_kernel", fme::rng_kernel_name()}, {"cold", g_cold}};
  info.update(fme::cpu_report());
  std::printf("%s\n", info.dump().c_str());
  if (g_cold) {
    for (bool huge : {false, true}) {
      const double ft = time_op(Op::kFirstTouch, bytes, threads, true, huge, repeats);
      emit("cold floor: one write per 4 KiB page of fresh memory", Op::kFirstTouch, true, huge, bytes, threads, ft, 0);
      emit("cold floor: MADV_POPULATE_WRITE a MiB at a time, then a write a page", Op::kPopulate, true, huge, bytes, threads,
           time_op(Op::kPopulate, bytes, threads, true, huge, repeats), ft);
      emit("cold: create fp32 params as prepare does", Op::kFillF32Fresh, true, huge, bytes, threads,
           time_op(Op::kFillF32Fresh, bytes, threads, true, huge, repeats), ft);
    }
    return 0;
  }

  for (bool huge : {false, true}) {
    const double ft = time_op(Op::kFirstTouch, bytes, threads, true, huge, repeats);
    emit("floor: one write per 4 KiB page of fresh memory", Op::kFirstTouch, true, huge, bytes, threads, ft, 0);
    emit("floor: MADV_POPULATE_WRITE a MiB at a time, then a write a page", Op::kPopulate, true, huge, bytes, threads,
         time_op(Op::kPopulate, bytes, threads, true, huge, repeats), ft);
    emit("every byte of fresh memory", Op::kMemset, true, huge, bytes, threads,
         time_op(Op::kMemset, bytes, threads, true, huge, repeats), ft);
    emit("create fp32 params", Op::kFillF32, true, huge, bytes, threads,
         time_op(Op::kFillF32, bytes, threads, true, huge, repeats), ft);
    emit("create fp32 params as prepare does (populate 1 MiB ahead)", Op::kFillF32Fresh, true, huge, bytes, threads,
         time_op(Op::kFillF32Fresh, bytes, threads, true, huge, repeats), ft);
    emit("create bf16 params", Op::kFillBf16, true, huge, bytes, threads,
         time_op(Op::kFillBf16, bytes, threads, true, huge, repeats), ft);
  }
  // Warm memory: the generator's own speed (a smaller buffer is enough and stays out of the fault path).
  const size_t warm_bytes = std::min(bytes, size_t{256} << 20);
  emit("warm memset bandwidth", Op::kMemset, false, false, bytes, threads,
       time_op(Op::kMemset, bytes, threads, false, false, repeats), 0);
  for (int t : {1, threads}) {
    for (auto kernel : {fme::RngKernel::kAvx512, fme::RngKernel::kAvx2Vaes, fme::RngKernel::kAesNi, fme::RngKernel::kPortable}) {
      if ((kernel == fme::RngKernel::kAvx512 && !fme::rng_avx512_available()) ||
          (kernel == fme::RngKernel::kAvx2Vaes && !fme::rng_avx2_vaes_available()) ||
          (kernel == fme::RngKernel::kAesNi && !fme::rng_aesni_available()))
        continue;  // this CPU lacks it
      const char* name = fme::rng_kernel_name(kernel);
      emit("generator speed", Op::kFillF32, false, false, warm_bytes, t,
           time_op(Op::kFillF32, warm_bytes, t, false, false, repeats, kernel), 0, name);
      emit("generator speed", Op::kFillBf16, false, false, warm_bytes, t,
           time_op(Op::kFillBf16, warm_bytes, t, false, false, repeats, kernel), 0, name);
    }
    if (t == threads) break;
  }
  return 0;
}

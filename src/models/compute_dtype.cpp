#include "models/compute_dtype.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>

#include "models/gemm_peak.h"
#include "models/tensor_io.h"
#include "util/error.h"

namespace fme {
namespace {

std::string gflops_str(double g) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", g);
  return buf;
}

}  // namespace

std::string dtype_short_name(at::ScalarType t) {
  if (t == at::kFloat) return "fp32";
  if (t == at::kBFloat16) return "bf16";
  if (t == at::kHalf) return "fp16";
  return c10::toString(t);
}

GemmProbe probe_gemm(c10::Device device) {
  static std::mutex mu;
  static std::map<c10::DeviceType, GemmProbe> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(device.type());
  if (it != cache.end()) return it->second;
  // Three alternating rounds, the best of each dtype: a busy machine (another job on the cores for a few ms)
  // then slows both alike instead of flipping the choice between two runs started side by side.
  GemmProbe p;
  for (int round = 0; round < 3; ++round) {
    p.fp32_gflops = std::max(p.fp32_gflops, measure_gemm_gflops(at::kFloat, 512, 3, device));
    p.bf16_gflops = std::max(p.bf16_gflops, measure_gemm_gflops(at::kBFloat16, 512, 3, device));
  }
  cache[device.type()] = p;
  return p;
}

DtypeChoice choose_compute_dtype(const std::string& requested, const CpuFeatures& cpu, c10::Device device,
                                 const GemmProbeFn& probe, const std::string& what) {
  DtypeChoice c;
  c.requested = requested;
  const bool on_cpu = device.is_cpu();
  const std::string hw = on_cpu ? "CPU " + cpu.model : device.str();
  const std::string natives = cpu.avx512_bf16 && cpu.amx_bf16 ? "AVX512_BF16 and AMX"
                              : cpu.amx_bf16                  ? "AMX"
                              : cpu.avx512_bf16               ? "AVX512_BF16"
                                                              : "Arm BF16";
  if (requested != "auto") {
    c.dtype = parse_scalar_type(requested, what, /*allow_fp16=*/false);
    c.reason = "requested";
    if (c.dtype == at::kBFloat16 && on_cpu && !cpu.native_bf16())
      c.warning = what + " bf16: this CPU (" + cpu.model + ", " + cpu.isa_summary() +
                  ") has no native bf16 matmul (AVX512_BF16, AMX), so bf16 compute is emulated and typically "
                  "~30x slower than fp32 here; use " + what + " auto (fp32 compute) with --weights-dtype bf16 to "
                  "keep bf16's memory";
    return c;
  }
  if (on_cpu && !cpu.native_bf16()) {
    c.dtype = at::kFloat;
    c.reason = "auto: " + hw + " has no native bf16 matmul (no AVX512_BF16, AMX or Arm BF16; has " +
               cpu.isa_summary() + "): fp32";
    return c;
  }
  c.probe = probe ? probe() : probe_gemm(device);
  const double speedup = c.probe.fp32_gflops > 0 ? c.probe.bf16_gflops / c.probe.fp32_gflops : 0;
  const std::string measured = "bf16 GEMM " + gflops_str(c.probe.bf16_gflops) + " GFLOP/s vs fp32 " +
                               gflops_str(c.probe.fp32_gflops) + " GFLOP/s";
  const std::string where = on_cpu ? hw + " has " + natives : hw;
  if (speedup >= kBf16RejectBelow) {
    c.dtype = at::kBFloat16;
    c.reason = "auto: " + where + ", probe " + measured + ": bf16";
  } else {
    c.dtype = at::kFloat;
    c.reason = "auto: " + where + ", but probe " + measured + " (bf16 is not native in this libtorch): fp32";
  }
  return c;
}

}  // namespace fme

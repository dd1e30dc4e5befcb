#include "util/cpu_features.h"

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "util/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace fme {
namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t");
  const auto e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// The first "model name" (x86) or "CPU part"/"Hardware" line of /proc/cpuinfo; "unknown" without one.
std::string cpuinfo_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    for (const char* key : {"model name", "Hardware", "Processor"}) {
      if (line.rfind(key, 0) == 0) {
        const auto colon = line.find(':');
        if (colon != std::string::npos) return trim(line.substr(colon + 1));
      }
    }
  }
  return "unknown";
}

#if defined(__x86_64__) || defined(__i386__)
// XCR0: which register states the OS saves on a context switch. A feature whose registers the OS does not
// save cannot be used even if cpuid lists it.
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t{hi} << 32) | lo;
}

void detect_x86(CpuFeatures& f) {
  f.arch = "x86_64";
  unsigned a, b, c, d;
  if (__get_cpuid_max(0x80000000u, nullptr) >= 0x80000004u) {  // brand string, 48 bytes
    uint32_t w[12];
    for (unsigned i = 0; i < 3; ++i) __get_cpuid(0x80000002u + i, &w[4 * i], &w[4 * i + 1], &w[4 * i + 2], &w[4 * i + 3]);
    f.model = trim(std::string(reinterpret_cast<const char*>(w), 48).c_str());
  }
  if (!__get_cpuid(1, &a, &b, &c, &d)) return;
  const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  f.aes = (c >> 25) & 1;
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool ymm_state = (xcr0 & 0x6) == 0x6;               // SSE + AVX state
  const bool zmm_state = ymm_state && (xcr0 & 0xE0) == 0xE0;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool tile_state = (xcr0 & 0x60000) == 0x60000;      // XTILECFG, XTILEDATA
  f.fma = ((c >> 12) & 1) && avx && ymm_state;
  if (__get_cpuid_max(0, nullptr) < 7) return;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = ((b >> 5) & 1) && avx && ymm_state;
  f.vaes = ((c >> 9) & 1) && f.avx2;
  const bool f512 = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
  f.avx512 = f512 && dq && bw && vl && zmm_state;
  f.amx_bf16 = ((d >> 22) & 1) && ((d >> 24) & 1) && tile_state;
  const unsigned max_sub = a;
  if (max_sub >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512_bf16 = ((a >> 5) & 1) && f.avx512;
  }
}
#endif

}  // namespace

std::vector<std::string> CpuFeatures::isa_names() const {
  std::vector<std::string> out;
  if (avx512) out.push_back("AVX-512");
  if (avx512_bf16) out.push_back("AVX512_BF16");
  if (amx_bf16) out.push_back("AMX");
  if (avx2) out.push_back("AVX2");
  if (fma) out.push_back("FMA");
  if (aes) out.push_back("AES-NI");
  if (vaes) out.push_back("VAES");
  if (arm_bf16) out.push_back("BF16");
  return out;
}

std::string CpuFeatures::isa_summary() const {
  std::string s;
  for (const auto& n : isa_names()) s += (s.empty() ? "" : " ") + n;
  return s.empty() ? "none" : s;
}

void disable_cpu_features(CpuFeatures& f, const std::string& disable) {
  std::stringstream ss(disable);
  std::string name;
  while (std::getline(ss, name, ',')) {
    name = trim(name);
    if (name.empty()) continue;
    if (name == "avx512") f.avx512 = f.avx512_bf16 = false;
    else if (name == "avx512_bf16") f.avx512_bf16 = false;
    else if (name == "amx") f.amx_bf16 = false;
    else if (name == "avx2") f.avx2 = f.vaes = f.avx512 = f.avx512_bf16 = false;
    else if (name == "fma") f.fma = false;
    else if (name == "aes") f.aes = f.vaes = false;
    else if (name == "vaes") f.vaes = false;
    else if (name == "bf16") f.avx512_bf16 = f.amx_bf16 = f.arm_bf16 = false;
    else
      throw ConfigError("FME_CPU_DISABLE: unknown feature '" + name +
                        "'; expected a comma-separated list of avx512, avx512_bf16, amx, avx2, fma, aes, vaes, bf16");
  }
}

CpuFeatures detect_cpu_features(const std::string& disable) {
  CpuFeatures f;
  f.model = "unknown";
#if defined(__x86_64__) || defined(__i386__)
  detect_x86(f);
#elif defined(__aarch64__)
  f.arch = "aarch64";
#if defined(__linux__) && defined(HWCAP2_BF16)
  f.arm_bf16 = (getauxval(AT_HWCAP2) & HWCAP2_BF16) != 0;
#endif
#else
  f.arch = "other";
#endif
  if (f.model.empty() || f.model == "unknown") f.model = cpuinfo_model();
  disable_cpu_features(f, disable);
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    const char* env = std::getenv("FME_CPU_DISABLE");
    return detect_cpu_features(env ? env : "");
  }();
  return f;
}

}  // namespace fme

namespace fme {

Json cpu_report() {
  const CpuFeatures& f = cpu_features();
  Json j{{"cpu", f.model}, {"arch", f.arch}, {"isa", f.isa_names()},
         {"cores", static_cast<int>(std::thread::hardware_concurrency())}};
  if (const char* env = std::getenv("FME_CPU_DISABLE"); env && *env) j["cpu_disabled"] = env;
  return j;
}

}  // namespace fme

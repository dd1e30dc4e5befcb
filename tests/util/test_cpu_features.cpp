// CPU feature detection: agrees with the kernel's own view (/proc/cpuinfo flags), and FME_CPU_DISABLE hides
// features together with those that depend on them.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "util/cpu_features.h"
#include "util/error.h"

namespace fme {
namespace {

// The flags of the first processor in /proc/cpuinfo (empty where there is none, or not x86).
std::set<std::string> proc_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      std::set<std::string> out;
      std::stringstream ss(line.substr(line.find(':') + 1));
      for (std::string f; ss >> f;) out.insert(f);
      return out;
    }
  }
  return {};
}

TEST(CpuFeatures, AgreeWithTheKernelsCpuinfoFlags) {
  const CpuFeatures f = detect_cpu_features("");
  const auto flags = proc_flags();
#if defined(__x86_64__)
  ASSERT_FALSE(flags.empty()) << "/proc/cpuinfo has no flags line";
  EXPECT_EQ(f.arch, "x86_64");
  EXPECT_EQ(f.avx2, flags.count("avx2") == 1);
  EXPECT_EQ(f.fma, flags.count("fma") == 1);
  EXPECT_EQ(f.aes, flags.count("aes") == 1);
  EXPECT_EQ(f.vaes, flags.count("vaes") == 1);
  EXPECT_EQ(f.avx512, flags.count("avx512f") && flags.count("avx512dq") && flags.count("avx512bw") && flags.count("avx512vl"));
  EXPECT_EQ(f.avx512_bf16, flags.count("avx512_bf16") == 1);
  EXPECT_EQ(f.amx_bf16, flags.count("amx_bf16") && flags.count("amx_tile"));
  EXPECT_EQ(f.native_bf16(), f.avx512_bf16 || f.amx_bf16);
#endif
  EXPECT_FALSE(f.model.empty());
}

TEST(CpuFeatures, DisablingHidesAFeatureAndWhatDependsOnIt) {
  CpuFeatures f;
  f.avx2 = f.fma = f.aes = f.vaes = f.avx512 = f.avx512_bf16 = f.amx_bf16 = true;
  CpuFeatures g = f;
  disable_cpu_features(g, "avx512");
  EXPECT_FALSE(g.avx512);
  EXPECT_FALSE(g.avx512_bf16);  // needs AVX-512
  EXPECT_TRUE(g.amx_bf16 && g.avx2 && g.vaes);
  g = f;
  disable_cpu_features(g, " bf16 ");
  EXPECT_FALSE(g.native_bf16());
  EXPECT_TRUE(g.avx512);
  g = f;
  disable_cpu_features(g, "avx2,aes");
  EXPECT_FALSE(g.avx2 || g.avx512 || g.avx512_bf16 || g.aes || g.vaes);
  EXPECT_TRUE(g.fma && g.amx_bf16);
  g = f;
  disable_cpu_features(g, "amx,avx512_bf16");
  EXPECT_FALSE(g.native_bf16());
  EXPECT_EQ(g.isa_summary(), "AVX-512 AVX2 FMA AES-NI VAES");
  EXPECT_EQ(f.isa_summary(), "AVX-512 AVX512_BF16 AMX AVX2 FMA AES-NI VAES");
  EXPECT_EQ(CpuFeatures{}.isa_summary(), "none");
}

TEST(CpuFeatures, UnknownNamesAreAnErrorListingTheKnownOnes) {
  CpuFeatures f;
  try {
    disable_cpu_features(f, "avx2,sse9");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("FME_CPU_DISABLE"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'sse9'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("avx512_bf16"), std::string::npos) << e.what();
  }
}

TEST(CpuFeatures, ReportNamesTheCpuAndItsIsa) {
  const Json j = cpu_report();
  EXPECT_EQ(j["cpu"].get<std::string>(), cpu_features().model);
  EXPECT_EQ(j["isa"].get<std::vector<std::string>>(), cpu_features().isa_names());
  EXPECT_GT(j["cores"].get<int>(), 0);
}

}  // namespace
}  // namespace fme

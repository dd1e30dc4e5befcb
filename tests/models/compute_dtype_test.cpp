// The compute dtype: `auto` follows the hardware (feature sets injected, probe stubbed), explicit choices
// are honoured with a warning where slow; and bf16-stored weights with fp32 compute equal an fp32 forward
// over the bf16-rounded weights.
#include <gtest/gtest.h>

#include "models/compute_dtype.h"
#include "models/loader.h"
#include "models/tensor_io.h"
#include "test_util.h"
#include "util/error.h"

namespace fme {
namespace {

CpuFeatures avx2_only() {
  CpuFeatures f;
  f.model = "AMD EPYC (test)";
  f.arch = "x86_64";
  f.avx2 = f.fma = f.aes = f.vaes = true;
  return f;
}

CpuFeatures sapphire_rapids() {
  CpuFeatures f = avx2_only();
  f.model = "Intel Xeon (test)";
  f.avx512 = f.avx512_bf16 = f.amx_bf16 = true;
  return f;
}

TEST(ComputeDtype, AutoIsFp32WithoutNativeBf16AndNeverProbes) {
  int probes = 0;
  auto probe = [&] {
    ++probes;
    return GemmProbe{100, 1000};
  };
  CpuFeatures zen4_no_bf16 = avx2_only();
  zen4_no_bf16.avx512 = true;  // AVX-512 alone is not native bf16
  for (const CpuFeatures& f : {avx2_only(), zen4_no_bf16}) {
    DtypeChoice c = choose_compute_dtype("auto", f, c10::kCPU, probe);
    EXPECT_EQ(c.dtype, at::kFloat);
    EXPECT_EQ(c.requested, "auto");
    EXPECT_NE(c.reason.find("no native bf16"), std::string::npos) << c.reason;
    EXPECT_NE(c.reason.find(f.model), std::string::npos) << c.reason;
    EXPECT_TRUE(c.warning.empty());
  }
  EXPECT_EQ(probes, 0);
}

TEST(ComputeDtype, AutoIsBf16WhereNativeAndTheProbeConfirmsIt) {
  for (int which = 0; which < 3; ++which) {
    CpuFeatures f = sapphire_rapids();
    if (which == 1) f.amx_bf16 = false;     // Cooper Lake / Zen 4: AVX512_BF16 only
    if (which == 2) f.avx512_bf16 = false;  // AMX only
    DtypeChoice c = choose_compute_dtype("auto", f, c10::kCPU, [] { return GemmProbe{150, 600}; });
    EXPECT_EQ(c.dtype, at::kBFloat16) << which;
    EXPECT_NE(c.reason.find("600"), std::string::npos) << c.reason;
    EXPECT_DOUBLE_EQ(c.probe.bf16_gflops, 600);
  }
}

TEST(ComputeDtype, AutoIsFp32WhenTheProbeFindsBf16Emulated) {
  // cpuid says native, but this libtorch's bf16 GEMM is the emulated one.
  DtypeChoice c = choose_compute_dtype("auto", sapphire_rapids(), c10::kCPU, [] { return GemmProbe{150, 4.5}; });
  EXPECT_EQ(c.dtype, at::kFloat);
  EXPECT_NE(c.reason.find("not native"), std::string::npos) << c.reason;
  c = choose_compute_dtype("auto", sapphire_rapids(), c10::kCPU, [] { return GemmProbe{150, 150 * kBf16RejectBelow * 0.99}; });
  EXPECT_EQ(c.dtype, at::kFloat);
  // Noise on a loaded machine around parity does not flip a native CPU to fp32.
  c = choose_compute_dtype("auto", sapphire_rapids(), c10::kCPU, [] { return GemmProbe{150, 150 * kBf16RejectBelow * 1.01}; });
  EXPECT_EQ(c.dtype, at::kBFloat16);
}

TEST(ComputeDtype, ExplicitChoicesAreHonouredAndSlowOnesWarned) {
  DtypeChoice c = choose_compute_dtype("bf16", avx2_only(), c10::kCPU, [] { return GemmProbe{}; });
  EXPECT_EQ(c.dtype, at::kBFloat16);
  EXPECT_NE(c.warning.find("no native bf16"), std::string::npos) << c.warning;
  EXPECT_NE(c.warning.find("--weights-dtype bf16"), std::string::npos) << c.warning;
  EXPECT_EQ(std::count(c.warning.begin(), c.warning.end(), '\n'), 0);
  c = choose_compute_dtype("bfloat16", sapphire_rapids());
  EXPECT_EQ(c.dtype, at::kBFloat16);
  EXPECT_TRUE(c.warning.empty());
  c = choose_compute_dtype("fp32", sapphire_rapids());
  EXPECT_EQ(c.dtype, at::kFloat);
  EXPECT_TRUE(c.warning.empty());
  EXPECT_THROW(choose_compute_dtype("fp16", avx2_only()), ConfigError);
  try {
    choose_compute_dtype("int8", avx2_only(), c10::kCPU, {}, "--dtype");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--dtype"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("int8"), std::string::npos) << e.what();
  }
}

TEST(ComputeDtype, TheRealProbeMeasuresBothDtypesOncePerProcess) {
  const GemmProbe a = probe_gemm();
  const GemmProbe b = probe_gemm();  // cached
  EXPECT_GT(a.fp32_gflops, 0);
  EXPECT_GT(a.bf16_gflops, 0);
  EXPECT_EQ(a.fp32_gflops, b.fp32_gflops);
  EXPECT_EQ(a.bf16_gflops, b.bf16_gflops);  // a second measurement would not repeat to the last bit
}

// Every capture point of `model` on the golden inputs, as fp32.
std::map<std::string, at::Tensor> captures(Model& model, const std::map<std::string, at::Tensor>& golden) {
  std::map<std::string, at::Tensor> out;
  const auto points = model.hook_points();
  model.forward(test::golden_batch(golden), Capture::all(points, [&](const std::string& n, const at::Tensor& x) {
                  EXPECT_EQ(x.scalar_type(), at::kFloat) << n << " not computed in fp32";
                  out[n] = x.clone();
                }));
  return out;
}

class Bf16Weights : public ::testing::TestWithParam<const char*> {};

TEST_P(Bf16Weights, Fp32ComputeEqualsAnFp32ForwardOverTheRoundedWeights) {
  const std::string dir = test::shared(std::string("models/") + GetParam());
  auto golden = read_safetensors(dir + "/golden.safetensors");
  auto stored = load_model(dir, /*compute=*/at::kFloat, /*weights=*/at::kBFloat16);
  EXPECT_EQ(stored->compute_dtype(), at::kFloat);
  int64_t bytes = 0, numel = 0;
  for (const auto& [name, p] : stored->named_parameters()) {
    EXPECT_EQ(p.scalar_type(), at::kBFloat16) << name;
    bytes += p.numel() * p.element_size();
    numel += p.numel();
  }
  EXPECT_EQ(bytes, 2 * numel);  // half of fp32's memory

  auto rounded = load_model(dir, at::kFloat);
  rounded->to(at::kBFloat16);
  rounded->to(at::kFloat);  // fp32 parameters holding exactly the bf16 values
  auto a = captures(*stored, golden), b = captures(*rounded, golden);
  ASSERT_EQ(a.size(), b.size());
  const at::Tensor mask = golden.at("attention_mask");
  for (const auto& [name, x] : b) {
    ASSERT_TRUE(a.count(name)) << name;
    const double err = x.dim() == 3 ? test::max_abs_err_real(a[name], x, mask) : (a[name] - x).abs().max().item<double>();
    EXPECT_LE(err, 1e-5) << GetParam() << " " << name;
  }
  // And the rounding is real: the bf16 weights differ from the checkpoint's fp32 ones.
  auto exact = load_model(dir, at::kFloat);
  auto c = captures(*exact, golden);
  EXPECT_GT((c.begin()->second - a[c.begin()->first]).abs().max().item<double>() +
                (c.rbegin()->second - a[c.rbegin()->first]).abs().max().item<double>(),
            0.0);
}

INSTANTIATE_TEST_SUITE_P(Models, Bf16Weights, ::testing::Values("qwen2-tiny", "bert-tiny"),
                         [](const auto& info) { return std::string(info.param) == "qwen2-tiny" ? "qwen2" : "bert"; });

}  // namespace
}  // namespace fme

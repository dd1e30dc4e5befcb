// RoPE tables against Hugging Face's formulas: plain (through the goldens elsewhere) and Llama 3.1's "llama3"
// rescaling, whose values here come from HF's _compute_llama3_parameters and LlamaRotaryEmbedding.forward
// evaluated with PyTorch (rope_llama3_reference.py beside this file: Llama 3.2 1B's head_dim 64, theta 5e5,
// factor 32, low/high_freq_factor 1/4, original context 8192).
#include <gtest/gtest.h>

#include "models/layers.h"

namespace fme {
namespace {

TEST(Rope, Llama3ScalingMatchesHF) {
  const RopeScaling s{"llama3", 32.0, 1.0, 4.0, 8192};
  auto [cos, sin] = rope_tables(12346, 64, 500000.0, at::kFloat, s);  // [T, 64]
  ASSERT_EQ(cos.sizes(), (at::IntArrayRef{12346, 64}));
  // Row 1 holds cos/sin of inv_freq itself: atan2 recovers it (all of it is below pi).
  const std::vector<double> inv = {1.000000000e+00, 6.636012793e-01, 4.403666258e-01, 2.922278345e-01, 1.939227581e-01,
                                   1.286873817e-01, 8.539710194e-02, 5.666961893e-02, 3.760603070e-02, 2.495540865e-02,
                                   1.656044088e-02, 1.098952908e-02, 7.292665076e-03, 4.839421250e-03, 3.211446106e-03,
                                   1.290548011e-03, 4.295567051e-04, 9.708286234e-05, 1.946163866e-05, 1.291476747e-05,
                                   8.570255886e-06, 5.687232260e-06, 3.774054449e-06, 2.504467147e-06, 1.661967417e-06,
                                   1.102883630e-06, 7.318749340e-07, 4.856731266e-07, 3.222932889e-07, 2.138742303e-07,
                                   1.419272024e-07, 9.418306490e-08};
  at::Tensor got = at::atan2(sin[1].narrow(0, 0, 32).to(at::kDouble), cos[1].narrow(0, 0, 32).to(at::kDouble));
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(got[i].item<double>() / inv[i], 1.0, 2e-6) << "inv_freq " << i;
  const int cols[5] = {0, 5, 12, 20, 31};
  const double cos100[5] = {8.623188734e-01, 9.546341300e-01, 7.456633449e-01, 9.999996424e-01, 1.000000000e+00};
  const double cos12345[5] = {1.114357859e-01, 5.401922464e-01, -4.728861749e-01, 9.944084287e-01, 9.999993443e-01};
  const double sin100[5] = {-5.063656569e-01, 2.977811992e-01, 6.663228869e-01, 8.570255013e-04, 9.418306945e-06};
  const double sin12345[5] = {-9.937716126e-01, -8.415416479e-01, 8.811235428e-01, 1.056025401e-01, 1.162689761e-03};
  for (int k = 0; k < 5; ++k) {
    EXPECT_NEAR(cos[100][cols[k]].item<double>(), cos100[k], 1e-6) << cols[k];
    EXPECT_NEAR(sin[100][cols[k]].item<double>(), sin100[k], 1e-6) << cols[k];
    EXPECT_NEAR(cos[12345][cols[k]].item<double>(), cos12345[k], 1e-4) << cols[k];  // angles up to 1.2e4 rad
    EXPECT_NEAR(sin[12345][cols[k]].item<double>(), sin12345[k], 1e-4) << cols[k];
    EXPECT_TRUE(at::equal(cos[100][cols[k]], cos[100][cols[k] + 32]));  // cat(freqs, freqs)
  }
  // Unscaled RoPE differs at low frequencies (the whole point of the rescaling).
  auto [cos0, sin0] = rope_tables(12346, 64, 500000.0, at::kFloat);
  EXPECT_GT((cos0[12345] - cos[12345]).abs().max().item<double>(), 0.1);
  EXPECT_TRUE(at::equal(cos0[12345][0], cos[12345][0]));  // the highest frequency is kept as is
}

}  // namespace
}  // namespace fme

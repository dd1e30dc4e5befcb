// Helpers shared by the model tests.
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace fme::test {

inline std::string shared(const std::string& rel) { return std::string(FME_SHARED_DATA) + "/" + rel; }

// Max |a - b| over the real-token positions (mask [B,T] = 1) of [B,T,H] tensors.
inline double max_abs_err_real(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  at::Tensor d = (a.to(at::kFloat) - b.to(at::kFloat)).abs();        // [B,T,H]
  at::Tensor m = mask.to(at::kBool).unsqueeze(-1).expand_as(d);
  return d.masked_select(m).max().item<double>();
}

}  // namespace fme::test

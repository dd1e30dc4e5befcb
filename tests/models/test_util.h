// Helpers shared by the model tests.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <string>

#include "models/model.h"
#include "test_paths.h"

namespace fme::test {

// Max |a - b| over the real-token positions (mask [B,T] = 1) of [B,T,...] tensors.
inline double max_abs_err_real(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  at::Tensor d = (a.to(at::kFloat) - b.to(at::kFloat)).abs().flatten(2);  // [B,T,rest]
  at::Tensor m = mask.to(at::kBool).unsqueeze(-1).expand_as(d);
  return d.masked_select(m).max().item<double>();
}

// The golden files' names (HF hidden states) as hook points: embeddings is block 0's input, resid_post.{i}
// block i's output, final the final norm's output (BERT, post-norm: the last block's output).
inline std::string hook_for_golden(const Model& model, const std::string& name) {
  const int64_t L = model.num_layers();
  if (name == "embeddings") return "blocks.0.hook_resid_pre";
  if (name.rfind("resid_post.", 0) == 0) return "blocks." + name.substr(11) + ".hook_resid_post";
  if (name == "final") return model.model_type() == "bert" ? "blocks." + std::to_string(L - 1) + ".hook_resid_post" : "ln_final.hook_normalized";
  return name;  // pooler_output
}

// Every hook point of `model` on `batch`, cloned as fp32 (or those `names` lists).
inline std::map<std::string, at::Tensor> capture_points(Model& model, const Batch& batch,
                                                        std::vector<std::string> names = {}) {
  if (names.empty())
    for (const auto& p : model.hook_points()) names.push_back(p.name);
  std::map<std::string, at::Tensor> out;
  model.forward(batch, Capture(model.hook_points(), names, [&](const std::string& n, const at::Tensor& x) {
                  out[n] = x.to(at::kFloat).clone();
                }));
  return out;
}

// The batch stored in a golden file.
inline Batch golden_batch(const std::map<std::string, at::Tensor>& golden) {
  Batch b{golden.at("input_ids"), golden.at("attention_mask"), {}};
  if (golden.count("token_type_ids")) b.token_type_ids = golden.at("token_type_ids");
  return b;
}

}  // namespace fme::test

// Module lists for plan tests: a Hugging Face BERT (bert-base sizes) and a Qwen2-like decoder, described
// the way the model builder hands them to fme::plans::resolve (tree order, HF names).
#pragma once
#include <string>
#include <vector>

#include "plans/resolve.h"

namespace fme::plans::testing {

inline ParamDesc param(const std::string& name, std::vector<int64_t> shape, const std::string& dtype = "fp32") {
  return ParamDesc{name, std::move(shape), dtype, true};
}

inline ModuleDesc linear(const std::string& path, int64_t in, int64_t out, bool bias = true) {
  ModuleDesc m{path, "Linear", {param("weight", {out, in})}};  // weight [out, in]
  if (bias) m.params.push_back(param("bias", {out}));
  return m;
}

inline ModuleDesc embedding(const std::string& path, int64_t num, int64_t dim) {
  return ModuleDesc{path, "Embedding", {param("weight", {num, dim})}};  // weight [num, dim]
}

inline ModuleDesc layer_norm(const std::string& path, int64_t dim) {
  return ModuleDesc{path, "LayerNorm", {param("weight", {dim}), param("bias", {dim})}};
}

// BERT with HF module names: H hidden, I intermediate, V vocab.
inline std::vector<ModuleDesc> bert_modules(int layers, int64_t H = 768, int64_t I = 3072, int64_t V = 30522) {
  std::vector<ModuleDesc> m;
  m.push_back(embedding("embeddings.word_embeddings", V, H));
  m.push_back(embedding("embeddings.position_embeddings", 512, H));
  m.push_back(embedding("embeddings.token_type_embeddings", 2, H));
  m.push_back(layer_norm("embeddings.LayerNorm", H));
  for (int l = 0; l < layers; ++l) {
    std::string p = "encoder.layer." + std::to_string(l) + ".";
    m.push_back(linear(p + "attention.self.query", H, H));
    m.push_back(linear(p + "attention.self.key", H, H));
    m.push_back(linear(p + "attention.self.value", H, H));
    m.push_back(linear(p + "attention.output.dense", H, H));
    m.push_back(layer_norm(p + "attention.output.LayerNorm", H));
    m.push_back(linear(p + "intermediate.dense", H, I));
    m.push_back(linear(p + "output.dense", I, H));
    m.push_back(layer_norm(p + "output.LayerNorm", H));
  }
  m.push_back(linear("pooler.dense", H, H));
  return m;
}

// A Qwen2-like decoder (no biases on o_proj / MLP, RMSNorm), sizes of Qwen2-0.5B.
inline std::vector<ModuleDesc> qwen2_modules(int layers, int64_t H = 896, int64_t KV = 128, int64_t I = 4864,
                                             int64_t V = 151936) {
  std::vector<ModuleDesc> m;
  m.push_back(embedding("model.embed_tokens", V, H));
  for (int l = 0; l < layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    m.push_back(linear(p + "self_attn.q_proj", H, H));
    m.push_back(linear(p + "self_attn.k_proj", H, KV));
    m.push_back(linear(p + "self_attn.v_proj", H, KV));
    m.push_back(linear(p + "self_attn.o_proj", H, H, false));
    m.push_back(linear(p + "mlp.gate_proj", H, I, false));
    m.push_back(linear(p + "mlp.up_proj", H, I, false));
    m.push_back(linear(p + "mlp.down_proj", I, H, false));
    m.push_back(ModuleDesc{p + "input_layernorm", "RMSNorm", {param("weight", {H})}});
    m.push_back(ModuleDesc{p + "post_attention_layernorm", "RMSNorm", {param("weight", {H})}});
  }
  m.push_back(ModuleDesc{"model.norm", "RMSNorm", {param("weight", {H})}});
  m.push_back(linear("lm_head", H, V, false));
  return m;
}

inline Mesh mesh_tp(int n) { return Mesh{{{"tp", n}}}; }

}  // namespace fme::plans::testing

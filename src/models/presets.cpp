#include "models/presets.h"

#include "util/error.h"

namespace fme {
namespace {

DecoderConfig qwen2(int64_t layers, int64_t hidden, int64_t heads, int64_t kv_heads, int64_t inter) {
  DecoderConfig c;
  c.model_type = "qwen2";
  c.qkv_bias = true;
  c.vocab_size = 151936;  // the Qwen2.5 tokenizer's full id space
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.max_position_embeddings = 32768;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 1000000.0;
  c.tie_word_embeddings = true;
  c.hidden_act = "silu";
  c.initializer_range = 0.02;
  return c;
}

// Qwen3-0.6B (config.json of Qwen/Qwen3-0.6B): head_dim 128 != hidden / heads, q/k norm, no biases.
DecoderConfig qwen3_0_6b() {
  DecoderConfig c;
  c.model_type = "qwen3";
  c.vocab_size = 151936;
  c.hidden_size = 1024;
  c.intermediate_size = 3072;
  c.num_hidden_layers = 28;
  c.num_attention_heads = 16;
  c.num_key_value_heads = 8;
  c.head_dim_ = 128;
  c.max_position_embeddings = 40960;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 1000000.0;
  c.tie_word_embeddings = true;
  c.qk_norm = true;
  c.hidden_act = "silu";
  return c;
}

// Llama 3.2 1B (config.json of meta-llama/Llama-3.2-1B): llama3 RoPE scaling, tied embeddings.
DecoderConfig llama_3_2_1b() {
  DecoderConfig c;
  c.model_type = "llama";
  c.vocab_size = 128256;
  c.hidden_size = 2048;
  c.intermediate_size = 8192;
  c.num_hidden_layers = 16;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.head_dim_ = 64;
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  c.rope_scaling = {"llama3", 32.0, 1.0, 4.0, 8192};
  c.tie_word_embeddings = true;
  c.hidden_act = "silu";
  return c;
}

// Gemma 2 2B (config.json of google/gemma-2-2b): head_dim 256, GeGLU, soft-capping, sliding window on even layers.
DecoderConfig gemma_2_2b() {
  DecoderConfig c;
  c.model_type = "gemma2";
  c.vocab_size = 256000;
  c.hidden_size = 2304;
  c.intermediate_size = 9216;
  c.num_hidden_layers = 26;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.head_dim_ = 256;
  c.max_position_embeddings = 8192;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = true;
  c.hidden_act = "gelu_pytorch_tanh";
  c.gemma_norms = true;
  c.query_pre_attn_scalar = 256;
  c.attn_logit_softcapping = 50.0;
  c.final_logit_softcapping = 30.0;
  c.sliding_window = 4096;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) c.sliding.push_back(i % 2 == 0);
  return c;
}

// GPT-2 of the given sizes, otherwise as openai-community/gpt2's config.json (the full 50257-token vocabulary).
Gpt2Config gpt2(int64_t layers, int64_t hidden, int64_t heads, int64_t positions) {
  Gpt2Config c;
  c.vocab_size = 50257;
  c.hidden_size = hidden;
  c.intermediate_size = 4 * hidden;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.max_position_embeddings = positions;
  c.layer_norm_eps = 1e-5;
  c.activation_function = "gelu_new";
  return c;
}

// The BERT sizes the seed benchmarked: vocab 30522, 512 positions, 2 token types, intermediate 4 x hidden.
BertConfig bert(int64_t layers, int64_t hidden, int64_t heads) {
  BertConfig c;
  c.vocab_size = 30522;
  c.hidden_size = hidden;
  c.intermediate_size = 4 * hidden;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.max_position_embeddings = 512;
  c.type_vocab_size = 2;
  c.layer_norm_eps = 1e-12;
  c.hidden_act = "gelu";
  c.pad_token_id = 0;
  c.initializer_range = 0.02;
  return c;
}

std::vector<Preset> make_presets() {
  std::vector<Preset> p;
  p.push_back({"qwen2-tiny", "4-layer Qwen2, hidden 32, full Qwen2.5 vocabulary (tests, demos)",
               qwen2(4, 32, 4, 2, 96), "qwen2.5"});
  p.push_back({"qwen2.5-0.5b", "Qwen2.5-0.5B shapes: 24 layers, hidden 896, 14 heads, 2 KV heads",
               qwen2(24, 896, 14, 2, 4864), "qwen2.5"});
  p.push_back({"qwen3-0.6b", "Qwen3-0.6B shapes: 28 layers, hidden 1024, 16 heads of 128, 8 KV heads, q/k norm",
               qwen3_0_6b(), "qwen3"});
  p.push_back({"llama-3.2-1b", "Llama 3.2 1B shapes: 16 layers, hidden 2048, 32 heads, 8 KV heads, llama3 RoPE",
               llama_3_2_1b(), ""});
  p.push_back({"gemma-2-2b", "Gemma 2 2B shapes: 26 layers, hidden 2304, 8 heads of 256, 4 KV heads, sliding window",
               gemma_2_2b(), ""});
  p.push_back({"gpt2", "GPT-2 small shapes: 12 layers, hidden 768, 12 heads, 1024 positions", gpt2(12, 768, 12, 1024), ""});
  p.push_back({"gpt2-tiny", "GPT-2 2 layers, hidden 64, 4 heads, full GPT-2 vocabulary (tests)", gpt2(2, 64, 4, 1024), ""});
  p.push_back({"bert-tiny", "BERT 2 layers, hidden 64, 4 heads, full bert-base-uncased vocabulary (tests)", bert(2, 64, 4),
               "bert-base-uncased"});
  p.push_back({"bert-4l-768h", "BERT 4 layers, hidden 768, 12 heads", bert(4, 768, 12), "bert-base-uncased"});
  p.push_back({"bert-12l-1024h", "BERT 12 layers, hidden 1024, 16 heads", bert(12, 1024, 16), "bert-base-uncased"});
  for (int layers : {24, 36, 48, 60})
    p.push_back({"bert-" + std::to_string(layers) + "l-2048h",
                 "BERT " + std::to_string(layers) + " layers, hidden 2048, 16 heads", bert(layers, 2048, 16),
                 "bert-base-uncased"});
  return p;
}

}  // namespace

const std::vector<Preset>& presets() {
  static const std::vector<Preset> all = make_presets();
  return all;
}

const Preset& find_preset(const std::string& name) {
  std::string names;
  for (const auto& p : presets()) {
    if (p.name == name) return p;
    names += (names.empty() ? "" : ", ") + p.name;
  }
  throw ConfigError("unknown preset '" + name + "'; known presets: " + names);
}

}  // namespace fme

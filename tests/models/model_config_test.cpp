// Tests of the config.json parsers (models/model_config.h and each family's config.cpp) on the tiny
// models' config.json files (values as written in those files), the to_json round trip, and every way a
// config can be refused.
#include <gtest/gtest.h>

#include "models/model_config.h"
#include "../formats/test_helpers.h"
#include "util/file.h"

namespace {

using fme_test::contains;
using fme_test::TempDir;

const std::string kQwenDir = fme_test::kData + "/models/qwen2-tiny";
const std::string kBertDir = fme_test::kData + "/models/bert-tiny";

fme::Json load(const std::string& dir) { return fme::parse_json(fme::read_file(dir + "/config.json"), dir); }

template <typename E>
std::string parse_error(const fme::Json& j) {
  return fme_test::error_of<E>([&] { fme::parse_model_config(j, "cfg/config.json"); });
}

TEST(HfConfig, Qwen2TinyFields) {
  auto c = fme::load_model_config(kQwenDir);
  ASSERT_TRUE(std::holds_alternative<fme::DecoderConfig>(c));
  EXPECT_EQ(fme::model_type(c), "qwen2");
  const auto& q = std::get<fme::DecoderConfig>(c);
  EXPECT_EQ(q.vocab_size, 512);
  EXPECT_EQ(q.hidden_size, 64);
  EXPECT_EQ(q.intermediate_size, 176);
  EXPECT_EQ(q.num_hidden_layers, 3);
  EXPECT_EQ(q.num_attention_heads, 4);
  EXPECT_EQ(q.num_key_value_heads, 2);
  EXPECT_EQ(q.max_position_embeddings, 256);
  EXPECT_EQ(q.rms_norm_eps, 1e-06);
  EXPECT_EQ(q.rope_theta, 1000000.0);
  EXPECT_TRUE(q.tie_word_embeddings);
  EXPECT_EQ(q.hidden_act, "silu");
  EXPECT_EQ(q.initializer_range, 0.02);
  EXPECT_EQ(q.head_dim(), 16);
}

TEST(HfConfig, BertTinyFields) {
  auto c = fme::load_model_config(kBertDir);
  ASSERT_TRUE(std::holds_alternative<fme::BertConfig>(c));
  EXPECT_EQ(fme::model_type(c), "bert");
  const auto& b = std::get<fme::BertConfig>(c);
  EXPECT_EQ(b.vocab_size, 30522);
  EXPECT_EQ(b.hidden_size, 64);
  EXPECT_EQ(b.intermediate_size, 256);
  EXPECT_EQ(b.num_hidden_layers, 2);
  EXPECT_EQ(b.num_attention_heads, 4);
  EXPECT_EQ(b.max_position_embeddings, 128);
  EXPECT_EQ(b.type_vocab_size, 2);
  EXPECT_EQ(b.layer_norm_eps, 1e-12);
  EXPECT_EQ(b.hidden_act, "gelu");
  EXPECT_EQ(b.pad_token_id, 0);
  EXPECT_EQ(b.initializer_range, 0.02);
  EXPECT_EQ(b.position_embedding_type, "absolute");
}

// to_json -> parse gives the same struct back, and to_json carries the keys HF needs to load it.
TEST(HfConfig, RoundTripsThroughToJson) {
  for (const std::string& dir : {kQwenDir, kBertDir}) {
    SCOPED_TRACE(dir);
    fme::ModelConfig c = fme::load_model_config(dir);
    fme::Json j = fme::to_json(c);
    EXPECT_EQ(j.at("torch_dtype"), "float32");
    EXPECT_EQ(j.at("model_type"), fme::model_type(c));
    // Every key of the original file that fme models has the same value in the output.
    fme::Json orig = load(dir);
    for (const auto& [k, v] : j.items())
      if (orig.contains(k)) {
        EXPECT_EQ(orig.at(k), v) << k;
      }
    TempDir d;
    fme::write_file_atomic(d / "config.json", j.dump(2));
    fme::ModelConfig back = fme::load_model_config(d.path);
    EXPECT_EQ(fme::to_json(back), j);
  }
  EXPECT_EQ(fme::to_json(fme::load_model_config(kQwenDir)).at("architectures"), fme::Json({"Qwen2ForCausalLM"}));
  EXPECT_EQ(fme::to_json(fme::load_model_config(kBertDir)).at("architectures"), fme::Json({"BertModel"}));
}

TEST(HfConfig, EveryMissingRequiredKeyIsNamed) {
  const std::vector<std::string> qwen_keys = {"vocab_size",          "hidden_size",         "intermediate_size",
                                              "num_hidden_layers",   "num_attention_heads", "num_key_value_heads",
                                              "rms_norm_eps",        "rope_theta",          "hidden_act",
                                              "max_position_embeddings", "model_type"};
  const std::vector<std::string> bert_keys = {"vocab_size",        "hidden_size",         "intermediate_size",
                                              "num_hidden_layers", "num_attention_heads", "max_position_embeddings",
                                              "type_vocab_size",   "layer_norm_eps",      "hidden_act", "model_type"};
  for (const auto& [dir, keys] : {std::pair{kQwenDir, qwen_keys}, std::pair{kBertDir, bert_keys}}) {
    for (const auto& key : keys) {
      SCOPED_TRACE(dir + " without " + key);
      fme::Json j = load(dir);
      ASSERT_EQ(j.erase(key), 1u);
      EXPECT_EQ(parse_error<fme::ConfigError>(j), "cfg/config.json: missing required key '" + key + "'");
      j[key] = nullptr;  // null counts as missing
      EXPECT_EQ(parse_error<fme::ConfigError>(j), "cfg/config.json: missing required key '" + key + "'");
    }
  }
}

TEST(HfConfig, OptionalKeysDefaultLikeHf) {
  fme::Json q = load(kQwenDir);
  q.erase("tie_word_embeddings");
  q.erase("initializer_range");
  q.erase("rope_scaling");
  q.erase("use_sliding_window");
  auto qc = std::get<fme::DecoderConfig>(fme::parse_model_config(q, "q"));
  EXPECT_FALSE(qc.tie_word_embeddings);
  EXPECT_EQ(qc.initializer_range, 0.02);
  fme::Json b = load(kBertDir);
  b.erase("pad_token_id");
  b.erase("position_embedding_type");
  auto bc = std::get<fme::BertConfig>(fme::parse_model_config(b, "b"));
  EXPECT_EQ(bc.pad_token_id, 0);
  EXPECT_EQ(bc.position_embedding_type, "absolute");
}

TEST(HfConfig, UnsupportedModelType) {
  fme::Json j = load(kQwenDir);
  j["model_type"] = "gpt_neox";
  std::string m = parse_error<fme::UnsupportedError>(j);
  EXPECT_EQ(m, "cfg/config.json: model_type \"gpt_neox\" is not supported (supported: llama, mistral, qwen2, qwen3, gemma2, gpt2, bert)");
}

TEST(HfConfig, WrongTypeForAField) {
  fme::Json j = load(kQwenDir);
  j["hidden_size"] = "64";
  EXPECT_EQ(parse_error<fme::ConfigError>(j), "cfg/config.json: key 'hidden_size' must be an integer, got \"64\"");
  j = load(kQwenDir);
  j["rms_norm_eps"] = true;
  EXPECT_EQ(parse_error<fme::ConfigError>(j), "cfg/config.json: key 'rms_norm_eps' must be a number, got true");
  j = load(kQwenDir);
  j["tie_word_embeddings"] = "yes";
  EXPECT_EQ(parse_error<fme::ConfigError>(j),
            "cfg/config.json: key 'tie_word_embeddings' must be a boolean, got \"yes\"");
  j = load(kBertDir);
  j["num_hidden_layers"] = 2.5;
  EXPECT_EQ(parse_error<fme::ConfigError>(j), "cfg/config.json: key 'num_hidden_layers' must be an integer, got 2.5");
  j = load(kBertDir);
  j["hidden_size"] = 1e300;
  EXPECT_TRUE(contains(parse_error<fme::ConfigError>(j), "key 'hidden_size' is out of range"));
  j = load(kQwenDir);
  j["model_type"] = 2;
  EXPECT_EQ(parse_error<fme::ConfigError>(j), "cfg/config.json: key 'model_type' must be a string, got 2");
  EXPECT_EQ(parse_error<fme::ConfigError>(fme::Json::array()), "cfg/config.json: expected a JSON object");
}

TEST(HfConfig, UnsupportedQwen2Features) {
  fme::Json j = load(kQwenDir);
  j["use_sliding_window"] = true;
  std::string m = parse_error<fme::UnsupportedError>(j);
  EXPECT_TRUE(contains(m, "cfg/config.json: use_sliding_window=true is not supported")) << m;
  j = load(kQwenDir);
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
  m = parse_error<fme::UnsupportedError>(j);
  EXPECT_TRUE(contains(m, "cfg/config.json: rope_scaling type 'yarn' is not supported")) << m;
  j = load(kQwenDir);
  j["hidden_act"] = "gelu";
  EXPECT_TRUE(contains(parse_error<fme::UnsupportedError>(j), "hidden_act 'gelu' is not supported for qwen2"));
  j = load(kQwenDir);
  j["head_dim"] = 32;  // explicit, and not hidden / heads: used as given (HF's Qwen2 reads it too)
  EXPECT_EQ(std::get<fme::DecoderConfig>(fme::parse_model_config(j, "q")).head_dim(), 32);
}

TEST(HfConfig, DecoderVariantsReadTheirHfKeys) {
  const std::string data = fme_test::kData + "/models/";
  auto llama = std::get<fme::DecoderConfig>(fme::load_model_config(data + "llama-tiny"));
  EXPECT_EQ(llama.model_type, "llama");
  EXPECT_EQ(llama.head_dim(), 8);
  EXPECT_FALSE(llama.qkv_bias || llama.o_bias || llama.mlp_bias || llama.qk_norm);
  auto qwen3 = std::get<fme::DecoderConfig>(fme::load_model_config(data + "qwen3-tiny"));
  EXPECT_EQ(qwen3.model_type, "qwen3");
  EXPECT_EQ(qwen3.head_dim(), 12);  // explicit, != hidden 32 / 4 heads
  EXPECT_TRUE(qwen3.qk_norm);
  EXPECT_FALSE(qwen3.qkv_bias);
  auto qwen2 = std::get<fme::DecoderConfig>(fme::load_model_config(kQwenDir));
  EXPECT_TRUE(qwen2.qkv_bias);
  EXPECT_FALSE(qwen2.o_bias || qwen2.qk_norm);

  fme::Json j = load(data + "llama-tiny");
  j["attention_bias"] = true;
  j["mlp_bias"] = true;
  j.erase("num_key_value_heads");  // HF's LlamaConfig: as many KV heads as query heads
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  auto l = std::get<fme::DecoderConfig>(fme::parse_model_config(j, "l"));
  EXPECT_TRUE(l.qkv_bias && l.o_bias && l.mlp_bias);
  EXPECT_EQ(l.num_key_value_heads, l.num_attention_heads);
  EXPECT_EQ(l.rope_scaling.type, "llama3");
  EXPECT_EQ(l.rope_scaling.original_max_position_embeddings, 8192);
  // Round trip through to_json.
  auto again = std::get<fme::DecoderConfig>(fme::parse_model_config(fme::to_json(l), "again"));
  EXPECT_EQ(again.rope_scaling.factor, 32.0);
  EXPECT_TRUE(again.mlp_bias);
  EXPECT_EQ(again.model_type, "llama");
  j["rope_scaling"].erase("low_freq_factor");
  EXPECT_TRUE(contains(parse_error<fme::ConfigError>(j), "low_freq_factor")) << parse_error<fme::ConfigError>(j);

  fme::Json q3 = load(data + "qwen3-tiny");
  q3.erase("head_dim");
  EXPECT_TRUE(contains(parse_error<fme::ConfigError>(q3), "'head_dim'"));
  q3 = load(data + "qwen3-tiny");
  q3["layer_types"] = {"full_attention", "sliding_attention"};
  EXPECT_TRUE(contains(parse_error<fme::UnsupportedError>(q3), "sliding_attention"));

  auto g = std::get<fme::DecoderConfig>(fme::load_model_config(data + "gemma2-tiny"));
  EXPECT_EQ(g.model_type, "gemma2");
  EXPECT_TRUE(g.gemma_norms && g.tie_word_embeddings);
  EXPECT_EQ(g.hidden_act, "gelu_pytorch_tanh");  // from hidden_activation
  EXPECT_EQ(g.query_pre_attn_scalar, 12);
  EXPECT_EQ(g.attn_logit_softcapping, 4.0);
  EXPECT_EQ(g.final_logit_softcapping, 3.0);
  EXPECT_EQ(g.sliding_window, 4);
  EXPECT_EQ(g.sliding, (std::vector<bool>{true, false, true}));
  fme::Json gj = load(data + "gemma2-tiny");
  gj.erase("layer_types");  // Gemma2Config's default: even layers slide
  gj["num_hidden_layers"] = 4;
  EXPECT_EQ(std::get<fme::DecoderConfig>(fme::parse_model_config(gj, "g")).sliding,
            (std::vector<bool>{true, false, true, false}));
  gj["attn_logit_softcapping"] = nullptr;  // none
  EXPECT_EQ(std::get<fme::DecoderConfig>(fme::parse_model_config(gj, "g")).attn_logit_softcapping, 0.0);
  auto back = std::get<fme::DecoderConfig>(fme::parse_model_config(fme::to_json(g), "back"));
  EXPECT_EQ(back.sliding, g.sliding);
  EXPECT_EQ(back.query_pre_attn_scalar, 12);
  gj = load(data + "gemma2-tiny");
  gj["layer_types"] = {"sliding_attention", "full_attention"};  // 2 entries for 3 layers
  EXPECT_TRUE(contains(parse_error<fme::ConfigError>(gj), "'layer_types' has 2 entries for 3 layers"));
  gj = load(data + "gemma2-tiny");
  gj.erase("query_pre_attn_scalar");
  EXPECT_TRUE(contains(parse_error<fme::ConfigError>(gj), "query_pre_attn_scalar"));

  fme::Json m = load(data + "llama-tiny");
  m["model_type"] = "mistral";
  m["sliding_window"] = 16;  // below max_position_embeddings 64
  EXPECT_TRUE(contains(parse_error<fme::UnsupportedError>(m), "sliding_window 16"));
  m.erase("sliding_window");  // HF's default window, 4096, covers every position of this config
  EXPECT_EQ(std::get<fme::DecoderConfig>(fme::parse_model_config(m, "m")).model_type, "mistral");
  m["sliding_window"] = nullptr;
  EXPECT_NO_THROW(fme::parse_model_config(m, "m"));
}

TEST(HfConfig, Gpt2ReadsItsOwnKeyNames) {
  const std::string dir = fme_test::kData + "/models/gpt2-tiny";
  auto g = std::get<fme::Gpt2Config>(fme::load_model_config(dir));
  EXPECT_EQ(fme::model_type(fme::ModelConfig(g)), "gpt2");
  EXPECT_EQ(g.hidden_size, 32);
  EXPECT_EQ(g.intermediate_size, 128);  // n_inner null: 4 * n_embd
  EXPECT_EQ(g.num_hidden_layers, 2);
  EXPECT_EQ(g.max_position_embeddings, 64);
  EXPECT_TRUE(g.tie_word_embeddings);
  auto back = std::get<fme::Gpt2Config>(fme::parse_model_config(fme::to_json(g), "back"));
  EXPECT_EQ(back.intermediate_size, 128);
  EXPECT_EQ(back.activation_function, "gelu_new");
  fme::Json j = load(dir);
  j["activation_function"] = "relu";
  EXPECT_TRUE(contains(parse_error<fme::UnsupportedError>(j), "activation_function 'relu' is not supported for gpt2"));
  j = load(dir);
  j.erase("n_embd");
  EXPECT_EQ(parse_error<fme::ConfigError>(j), "cfg/config.json: missing required key 'n_embd'");
  j = load(dir);
  j["n_head"] = 5;
  EXPECT_TRUE(contains(parse_error<fme::ConfigError>(j), "not divisible by num_attention_heads 5"));
}

TEST(HfConfig, UnsupportedBertFeatures) {
  fme::Json j = load(kBertDir);
  j["position_embedding_type"] = "relative_key";
  EXPECT_TRUE(contains(parse_error<fme::UnsupportedError>(j),
                       "cfg/config.json: position_embedding_type 'relative_key' is not supported"));
  j = load(kBertDir);
  j["hidden_act"] = "relu";
  EXPECT_TRUE(contains(parse_error<fme::UnsupportedError>(j), "hidden_act 'relu' is not supported for bert"));
  j = load(kBertDir);
  j["hidden_act"] = "gelu_new";
  EXPECT_NO_THROW(fme::parse_model_config(j, "b"));
}

TEST(HfConfig, InconsistentSizes) {
  fme::Json j = load(kQwenDir);
  j["num_attention_heads"] = 5;
  EXPECT_EQ(parse_error<fme::ConfigError>(j),
            "cfg/config.json: hidden_size 64 is not divisible by num_attention_heads 5");
  j = load(kQwenDir);
  j["num_key_value_heads"] = 3;
  EXPECT_EQ(parse_error<fme::ConfigError>(j),
            "cfg/config.json: num_attention_heads 4 is not divisible by num_key_value_heads 3");
  j = load(kQwenDir);
  j["hidden_size"] = 12;  // 4 heads of 3 channels: RoPE needs pairs
  j["num_attention_heads"] = 4;
  EXPECT_TRUE(contains(parse_error<fme::ConfigError>(j), "head_dim 3 must be even for RoPE"));
  j = load(kQwenDir);
  j["vocab_size"] = 0;
  EXPECT_EQ(parse_error<fme::ConfigError>(j), "cfg/config.json: 'vocab_size' must be positive, got 0");
  j = load(kQwenDir);
  j["rms_norm_eps"] = -1e-6;
  EXPECT_TRUE(contains(parse_error<fme::ConfigError>(j), "'rms_norm_eps' must be positive"));
  j = load(kBertDir);
  j["num_attention_heads"] = 0;
  EXPECT_EQ(parse_error<fme::ConfigError>(j), "cfg/config.json: 'num_attention_heads' must be positive, got 0");
  j = load(kBertDir);
  j["pad_token_id"] = 30522;
  EXPECT_TRUE(contains(parse_error<fme::ConfigError>(j), "pad_token_id 30522 is outside the vocabulary"));
}

TEST(HfConfig, LoadErrorsNameTheFile) {
  TempDir d;
  std::string m = fme_test::error_of<fme::IoError>([&] { fme::load_model_config(d.path); });
  EXPECT_TRUE(contains(m, d / "config.json")) << m;
  fme_test::write_bytes(d / "config.json", "{\"model_type\": \"qwen2\",");
  m = fme_test::error_of<fme::FormatError>([&] { fme::load_model_config(d.path); });
  EXPECT_TRUE(contains(m, d / "config.json is not valid JSON")) << m;
  fme_test::write_bytes(d / "config.json", R"({"model_type": "bert", "model_type": "qwen2"})");
  m = fme_test::error_of<fme::FormatError>([&] { fme::load_model_config(d.path); });
  EXPECT_TRUE(contains(m, "duplicate key 'model_type'")) << m;
}

}  // namespace

// `fme prepare` and tensor-parallel `fme forward` end to end, with real processes meeting over c10d/Gloo on
// loopback: a model gathered from tp=2 is bit-identical to tp=1, a TP forward equals the single-process one,
// LoRA/freeze select what the optimizer holds, and bad input is a clear error.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "dist/launch_env.h"
#include "models/model_config.h"
#include "models/init.h"
#include "models/model.h"
#include "pipelines/model_dir.h"
#include "models/tensor_io.h"
#include "util/file.h"
#include "util/json.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

using test::kFme;
using test::shared;


struct Out {
  int code;
  std::string out, err;
};

// Runs `world` copies of fme with torchrun-style env (world 1: no env), returns rank 0's result and the
// worst exit code. Bounded by `timeout 120`.
Out run_world(int world, const std::string& args) {
  static int n = 0;
  const std::string base = (fs::temp_directory_path() / ("fme-prep-" + std::to_string(getpid()) + "-" + std::to_string(n++))).string();
  const int code = dist::run_local_world(world, "timeout 120 " + kFme + " " + args + " --threads 1", base + ".out", false);
  Out o{code, read_file(base + ".out0"), read_file(base + ".out0.err")};
  for (int r = 0; r < world; ++r) {
    fs::remove(base + ".out" + std::to_string(r));
    fs::remove(base + ".out" + std::to_string(r) + ".err");
  }
  return o;
}

class Prepare : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fme-prepare-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& n) const { return (dir_ / n).string(); }
  fs::path dir_;
};

TEST_F(Prepare, ModelGatheredFromTp2IsBitIdenticalToTp1) {
  for (std::string model : {"bert-tiny", "qwen2-tiny", "gpt2-tiny"}) {
    const std::string plan = model == "bert-tiny" ? "builtin:bert-tp" : model == "gpt2-tiny" ? "builtin:gpt2-tp" : "builtin:qwen2-tp";
    const std::string a = path(model + "-tp1"), b = path(model + "-tp2");
    Out r1 = run_world(1, "prepare --model-preset " + model + " --plan " + plan + " --seed 5 --save-gathered " + a);
    ASSERT_EQ(r1.code, 0) << r1.err;
    Out r2 = run_world(2, "prepare --model-preset " + model + " --plan " + plan + " --mesh tp=2 --seed 5 --save-gathered " + b);
    ASSERT_EQ(r2.code, 0) << r2.err;
    auto x = read_safetensors(a + "/model.safetensors"), y = read_safetensors(b + "/model.safetensors");
    ASSERT_EQ(x.size(), y.size());
    for (const auto& [name, t] : x) EXPECT_TRUE(at::equal(t, y.at(name))) << model << " " << name;
    // And the initialisation is the seed's: N(0, 0.02) weights, unit norms, zero biases.
    const std::string w = model == "bert-tiny"   ? "encoder.layer.0.attention.self.query.weight"
                          : model == "gpt2-tiny" ? "transformer.h.0.attn.c_attn.weight"
                                                 : "model.layers.0.self_attn.q_proj.weight";
    EXPECT_NEAR(x.at(w).std().item<double>(), 0.02, 0.002);
    if (model == "gpt2-tiny") {
      // The fused c_attn [in, q|k|v] is whole again: the same elements as one process's, and its q, k and v
      // parts are not copies of each other (each was initialised by its own global indices).
      const at::Tensor qkv = x.at(w);
      EXPECT_EQ(qkv.sizes(), (std::vector<int64_t>{64, 192}));
      EXPECT_FALSE(at::equal(qkv.narrow(1, 0, 64), qkv.narrow(1, 64, 64)));
    }
    if (model == "bert-tiny") {
      EXPECT_TRUE(at::equal(x.at("embeddings.word_embeddings.weight")[0], at::zeros({64})));  // padding row
      EXPECT_TRUE(at::equal(x.at("encoder.layer.0.attention.self.query.bias"), at::zeros({64})));
      EXPECT_TRUE(at::equal(x.at("embeddings.LayerNorm.weight"), at::ones({64})));
    }
  }
}

TEST_F(Prepare, TensorParallelForwardEqualsOneProcess) {
  for (std::string model : {"bert-tiny", "qwen2-tiny"}) {
    const std::string plan = model == "bert-tiny" ? "builtin:bert-tp" : "builtin:qwen2-tp";
    const std::string in = shared("models/" + model + "/golden.safetensors");
    const std::string one = path(model + "-1.safetensors"), two = path(model + "-2.safetensors");
    ASSERT_EQ(run_world(1, "forward --model " + shared("models/" + model) + " --inputs " + in + " --out " + one +
                               " --dtype fp32").code,
              0);
    Out r = run_world(2, "forward --model " + shared("models/" + model) + " --inputs " + in + " --out " + two + " --plan " +
                             plan + " --mesh tp=2 --dtype fp32");
    ASSERT_EQ(r.code, 0) << r.err;
    auto x = read_safetensors(one), y = read_safetensors(two);
    at::Tensor mask = x.at("attention_mask").to(at::kBool).unsqueeze(-1);
    int compared = 0;
    for (const auto& [name, t] : x) {
      if (t.dim() < 3) continue;  // every [B,T,...] hook point; attn.hook_z and mlp.hook_post gathered whole
      at::Tensor d = (t - y.at(name)).abs().flatten(2);
      double err = d.masked_select(mask.expand_as(d)).max().item<double>();
      EXPECT_LE(err, 1e-5) << model << " " << name;
      ++compared;
    }
    EXPECT_GE(compared, 2 * 7);  // two blocks of 7 points (and Qwen2's ln_final)
    EXPECT_EQ(y.at("blocks.1.attn.hook_z").sizes(), x.at("blocks.1.attn.hook_z").sizes());
  }
}

TEST_F(Prepare, LoraAndFreezeDecideWhatTheOptimizerHolds) {
  write_file_atomic(path("lora.plan"),
                    "plan tp\n*.attention.self.query colwise(tp)\n*.attention.output.dense rowwise(tp)\n\n"
                    "plan adapters\n*.attention.self.query lora(r=4, alpha=8)\n*.word_embeddings freeze\n");
  Out r = run_world(2, "prepare --model-preset bert-tiny --plan " + path("lora.plan") + " --mesh tp=2 --json --first-step");
  ASSERT_EQ(r.code, 0) << r.err;
  Json s = Json::parse(r.out.substr(r.out.find('{')));
  EXPECT_TRUE(s.contains("first_step_ms"));
  EXPECT_LT(s["local_params"].get<int64_t>(), s["global_params"].get<int64_t>());  // rank 0 holds shards
  // The same without the freeze: AdamW's state (2 fp32 moments) grows by exactly the word embeddings
  // (plus at most one per-parameter step counter).
  write_file_atomic(path("nofreeze.plan"),
                    "plan tp\n*.attention.self.query colwise(tp)\n*.attention.output.dense rowwise(tp)\n\n"
                    "plan adapters\n*.attention.self.query lora(r=4, alpha=8)\n");
  Out r2 = run_world(2, "prepare --model-preset bert-tiny --plan " + path("nofreeze.plan") + " --mesh tp=2 --json");
  ASSERT_EQ(r2.code, 0) << r2.err;
  Json s2 = Json::parse(r2.out.substr(r2.out.find('{')));
  const int64_t grew = s2["optimizer_state_bytes"].get<int64_t>() - s["optimizer_state_bytes"].get<int64_t>();
  EXPECT_GE(grew, 30522 * 64 * 8);
  EXPECT_LE(grew, 30522 * 64 * 8 + 64);
  // Without LoRA the query weights and biases are trainable again and the adapters are gone.
  write_file_atomic(path("tp.plan"), "plan tp\n*.attention.self.query colwise(tp)\n*.attention.output.dense rowwise(tp)\n");
  Out r3 = run_world(2, "prepare --model-preset bert-tiny --plan " + path("tp.plan") + " --mesh tp=2 --json");
  ASSERT_EQ(r3.code, 0) << r3.err;
  Json s3 = Json::parse(r3.out.substr(r3.out.find('{')));
  EXPECT_EQ(s2["local_params"].get<int64_t>() - s3["local_params"].get<int64_t>(), 2 * (4 * 64 + 32 * 4))
      << "rank 0 holds lora_A [4, 64] whole and its half of lora_B [64, 4] in each of 2 layers";
  // wrt narrows the optimizer to matching parameters: here only the pooler (64*64 + 64 params).
  Out w = run_world(1, "prepare --model-preset bert-tiny --json --wrt pooler.* --pages huge");
  ASSERT_EQ(w.code, 0) << w.err;
  Json sw = Json::parse(w.out.substr(w.out.find('{')));
  EXPECT_TRUE(sw["param_pages"]["huge"].get<bool>());  // forced; a tiny model is never probed
  EXPECT_EQ(sw["param_pages"]["probe_ms_4k"].get<double>(), 0.0);
  EXPECT_GE(sw["optimizer_state_bytes"].get<int64_t>(), 2 * 4 * (64 * 64 + 64));
  EXPECT_LE(sw["optimizer_state_bytes"].get<int64_t>(), 2 * 4 * (64 * 64 + 64) + 128);
  Out e = run_world(1, "prepare --model-preset bert-tiny --plan " + path("lora.plan") + " --explain --optimizer none");
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("lora_A"), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("lora_B"), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("lora(r=4, alpha=8)"), std::string::npos);
}

// A model dir with random weights from `config_json` (a config.json document).
std::string make_model_dir(const std::string& dir, const Json& config_json) {
  auto model = create_model(parse_model_config(config_json, dir));
  init_weights(*model, 3);
  write_model_dir(*model, dir, at::kFloat, "");
  return dir;
}

TEST_F(Prepare, AMeshThatCutsAttentionHeadsIsRefusedNamingTheModule) {
  // BERT with 3 heads of 16 over tp=2: q/k/v's 48 outputs split evenly, but not by heads.
  Json bert = read_json_file(shared("models/bert-tiny/config.json"));
  bert["hidden_size"] = 48;
  bert["num_attention_heads"] = 3;
  const std::string b = make_model_dir(path("bert3"), bert);
  Out r = run_world(2, "prepare --model " + b + " --plan builtin:bert-tp --mesh tp=2 --optimizer none");
  EXPECT_NE(r.code, 0);
  for (const char* needle : {"encoder.layer.0.attention.self.query", "3 attention heads", "'tp'", "size 2"})
    EXPECT_NE(r.err.find(needle), std::string::npos) << needle << " not in: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.find("invalid for input"), std::string::npos) << "libtorch's message leaked: " << r.err;
  // A decoder whose one KV head cannot be split over 2 (its 4 query heads could).
  Json llama = read_json_file(shared("models/llama-tiny/config.json"));
  llama["num_key_value_heads"] = 1;
  const std::string l = make_model_dir(path("llama-kv1"), llama);
  r = run_world(2, "forward --model " + l + " --inputs " + shared("models/llama-tiny/golden.safetensors") + " --out " +
                       path("o.safetensors") + " --plan builtin:llama-tp --mesh tp=2");
  EXPECT_NE(r.code, 0);
  for (const char* needle : {"model.layers.0.self_attn.k_proj", "1 key/value heads", "4 query heads", "'tp'"})
    EXPECT_NE(r.err.find(needle), std::string::npos) << needle << " not in: " << r.err;
  EXPECT_FALSE(fs::exists(path("o.safetensors")));
  // GPT-2 with 3 heads of 16: each of c_attn's q, k, v parts (48) splits evenly over 2, its heads do not.
  Json gpt2 = read_json_file(shared("models/gpt2-tiny/config.json"));
  gpt2["n_embd"] = 48;
  gpt2["n_head"] = 3;
  const std::string g = make_model_dir(path("gpt2-3h"), gpt2);
  r = run_world(2, "prepare --model " + g + " --mesh tp=2 --optimizer none");
  EXPECT_NE(r.code, 0);
  for (const char* needle : {"transformer.h.0.attn.c_attn", "3 query/key/value heads", "'tp'"})
    EXPECT_NE(r.err.find(needle), std::string::npos) << needle << " not in: " << r.err;
}

// A tp mesh without --plan takes the architecture's own plan.
TEST_F(Prepare, ATensorParallelMeshWithoutAPlanUsesTheModelsOwn) {
  const std::string model = shared("models/qwen3-tiny"), in = shared("models/qwen3-tiny/golden.safetensors");
  const std::string a = path("own.safetensors"), b = path("explicit.safetensors");
  Out r = run_world(2, "forward --model " + model + " --inputs " + in + " --out " + a + " --mesh tp=2 --dtype fp32");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_world(2, "forward --model " + model + " --inputs " + in + " --out " + b +
                       " --plan builtin:decoder-tp --mesh tp=2 --dtype fp32");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_file(a), read_file(b));
}

// Each family under its own built-in plan (no --plan): GPT-2's fused c_attn split within its q, k, v parts.
TEST_F(Prepare, TensorParallelCausalLMsEqualOneProcess) {
  for (std::string model : {"llama-tiny", "qwen3-tiny", "gemma2-tiny", "gpt2-tiny"}) {
    const std::string in = shared("models/" + model + "/golden.safetensors");
    const std::string one = path(model + "-1.safetensors"), two = path(model + "-2.safetensors");
    ASSERT_EQ(run_world(1, "forward --model " + shared("models/" + model) + " --inputs " + in + " --out " + one +
                               " --dtype fp32").code,
              0);
    Out r = run_world(2, "forward --model " + shared("models/" + model) + " --inputs " + in + " --out " + two +
                             " --mesh tp=2 --dtype fp32");
    ASSERT_EQ(r.code, 0) << r.err;
    auto x = read_safetensors(one), y = read_safetensors(two);
    at::Tensor mask = x.at("attention_mask").to(at::kBool).unsqueeze(-1);
    int compared = 0;
    for (const auto& [name, t] : x) {
      if (t.dim() < 3) continue;
      ++compared;
      // Partial sums in another order: error relative to the activations' size (Gemma 2's reach ~20).
      const at::Tensor a = t.flatten(2), d = (t - y.at(name)).abs().flatten(2), m = mask.expand_as(a);
      const double scale = std::max(1.0, a.abs().masked_select(m).max().item<double>());
      EXPECT_LE(d.masked_select(m).max().item<double>(), 1e-5 * scale) << model << " " << name;
    }
    EXPECT_GE(compared, 2 * 7 + 1) << model;  // two blocks of 7 points and ln_final
  }
}

// A checkpoint loaded over tp=2 (each process reading its slices: c_attn's from each of q, k and v) and
// gathered back is the checkpoint.
TEST_F(Prepare, ACheckpointLoadedOverTp2GathersBackToItself) {
  for (std::string model : {"gpt2-tiny", "qwen3-tiny"}) {
    const std::string out = path(model + "-gathered");
    Out r = run_world(2, "prepare --model " + shared("models/" + model) + " --mesh tp=2 --optimizer none --save-gathered " + out);
    ASSERT_EQ(r.code, 0) << r.err;
    auto x = read_safetensors(shared("models/" + model + "/model.safetensors")), y = read_safetensors(out + "/model.safetensors");
    int compared = 0;
    for (const auto& [name, t] : y) {
      if (!x.count(name)) continue;  // a tied lm_head is not stored in the checkpoint
      EXPECT_TRUE(at::equal(t, x.at(name))) << model << " " << name;
      ++compared;
    }
    EXPECT_GE(compared, static_cast<int>(x.size()) - 1) << model;
  }
}

TEST_F(Prepare, BadInputIsAClearError) {
  write_file_atomic(path("bad.plan"), "plan tp\n*.attention.self.query colwize(tp)\n");
  Out r = run_world(1, "prepare --model-preset bert-tiny --plan " + path("bad.plan"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(path("bad.plan") + ":2:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("colwize"), std::string::npos) << r.err;

  r = run_world(1, "prepare --model-preset bert-tiny --plan builtin:bert-tp --mesh dp=1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("'tp'"), std::string::npos) << r.err;

  r = run_world(1, "prepare --model-preset bert-tiny --optimizer adamw --lr -1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("lr"), std::string::npos) << r.err;

  r = run_world(1, "prepare --model-preset bert-tiny --pages 3k");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--pages"), std::string::npos) << r.err;

  r = run_world(1, "prepare --model-preset bert-tiny --optimizer lion");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("adamw"), std::string::npos) << r.err;

  r = run_world(1, "prepare --model-preset bert-tiny --plan builtin:bert-tp --mesh tp=2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("has 2 processes"), std::string::npos) << r.err;

  // A checkpoint that does not match the model (qwen2-tiny's weights under a changed config).
  fs::create_directories(path("mismatch"));
  Json c = read_json_file(shared("models/qwen2-tiny/config.json"));
  c["intermediate_size"] = 128;
  write_file_atomic(path("mismatch/config.json"), c.dump());
  fs::copy_file(shared("models/qwen2-tiny/model.safetensors"), path("mismatch/model.safetensors"));
  r = run_world(1, "prepare --model " + path("mismatch") + " --plan builtin:qwen2-tp");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("mlp"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("expected"), std::string::npos) << r.err;
}

TEST_F(Prepare, AMissingPeerTimesOutWithAClearError) {
  // Only rank 0 of 2 is started.
  const int port = dist::free_loopback_port();
  const std::string cmd = "RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " timeout 60 " +
                          kFme + " prepare --model-preset bert-tiny --plan builtin:bert-tp --mesh tp=2 --timeout 2 2>" +
                          path("err");
  int status = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(read_file(path("err")).find("only 1 of 2"), std::string::npos) << read_file(path("err"));
}

}  // namespace
}  // namespace fme

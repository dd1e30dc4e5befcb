// The fme binary end to end: exit codes, one-line errors naming the file, no partial output, and
// `fme forward` parity with the HF goldens through the CLI.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "formats/safetensors.h"
#include "util/file.h"
#include "util/json.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

using test::kFme;
using test::shared;

struct Result {
  int code;
  std::string out, err;
};

// Runs fme with `args` (shell words), stdin from `input` if given.
// `env` (VAR=value words) is set for that command only.
Result run(const std::string& args, const std::string& stdin_path = "", const std::string& env = "") {
  static int n = 0;
  const std::string base = (fs::temp_directory_path() / ("fme-cli-" + std::to_string(::getpid()) + "-" + std::to_string(n++))).string();
  std::string cmd = (env.empty() ? "" : env + " ") + kFme + " " + args + " >" + base + ".out 2>" + base + ".err";
  cmd += stdin_path.empty() ? " </dev/null" : " <" + stdin_path;
  int status = std::system(cmd.c_str());
  Result r{WIFEXITED(status) ? WEXITSTATUS(status) : 128, read_file(base + ".out"), read_file(base + ".err")};
  fs::remove(base + ".out");
  fs::remove(base + ".err");
  return r;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fme-cli-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Expects a failure: exit 1, exactly one line on stderr containing every `needle`, and no `out` file.
  void expect_error(const Result& r, std::initializer_list<std::string> needles, const std::string& out = "") {
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "expected a one-line error, got: " << r.err;
    for (const auto& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "error lacks '" << n << "': " << r.err;
    if (!out.empty()) {
      EXPECT_FALSE(fs::exists(out)) << "partial output left at " << out;
      for (const auto& e : fs::directory_iterator(fs::path(out).parent_path()))
        EXPECT_EQ(e.path().filename().string().find(fs::path(out).filename().string() + ".tmp"), std::string::npos);
    }
  }

  // Writes input_ids / attention_mask [B,T] int64.
  std::string inputs(const std::vector<int64_t>& ids, const std::vector<int64_t>& mask, std::vector<int64_t> ids_shape,
                     std::vector<int64_t> mask_shape) {
    SafetensorsWriter w;
    w.add("input_ids", DType::I64, ids_shape, ids.data(), ids.size() * 8);
    w.add("attention_mask", DType::I64, mask_shape, mask.data(), mask.size() * 8);
    std::string p = path("in.safetensors");
    w.write(p);
    return p;
  }

  fs::path dir_;
};

// Max |a[name_a] - b[name_b]| over b's real tokens, for [B,T,...] float32 tensors.
double max_abs_err_real(const SafetensorsFile& a, const SafetensorsFile& b, const std::string& name,
                        const std::string& name_b = "") {
  const auto& ta = a.get(name);
  const auto& tb = b.get(name_b.empty() ? name : name_b);
  EXPECT_EQ(ta.shape, tb.shape) << name;
  if (ta.shape != tb.shape) return 1e30;
  const auto* mask = reinterpret_cast<const int64_t*>(b.data(b.get("attention_mask")));
  const auto* x = reinterpret_cast<const float*>(a.data(ta));
  const auto* y = reinterpret_cast<const float*>(b.data(tb));
  const int64_t BT = tb.shape[0] * tb.shape[1];
  int64_t H = 1;
  for (size_t d = 2; d < tb.shape.size(); ++d) H *= tb.shape[d];
  double err = 0;
  for (int64_t i = 0; i < BT; ++i)
    if (mask[i])
      for (int64_t h = 0; h < H; ++h) err = std::max(err, std::fabs(double(x[i * H + h]) - y[i * H + h]));
  return err;
}

TEST_F(Cli, ForwardMatchesTheHFGoldenThroughTheCli) {
  for (std::string model : {"qwen2-tiny", "bert-tiny"}) {
    // hooks.safetensors: every hook point as HF computes it, under the names fme writes.
    const std::string golden = shared("models/" + model + "/hooks.safetensors");
    const std::string out = path(model + ".safetensors");
    Result r = run("forward --model " + shared("models/" + model) + " --inputs " + golden + " --out " + out +
                   " --dtype fp32 --threads 2");
    ASSERT_EQ(r.code, 0) << r.err;
    auto a = SafetensorsFile::open(out);
    auto b = SafetensorsFile::open(golden);
    int compared = 0;
    for (const auto& t : b->tensors()) {
      if (t.shape.size() < 3) continue;
      EXPECT_LE(max_abs_err_real(*a, *b, t.name), 1e-4) << model << " " << t.name;
      ++compared;
    }
    EXPECT_GE(compared, 7 * 2);  // two blocks of 7 points (and Qwen2's ln_final)
    EXPECT_NE(a->find("input_ids"), nullptr);
    EXPECT_NE(a->find("attention_mask"), nullptr);
  }
}

TEST_F(Cli, ForwardRecordsItsComputeDtypeAndKeepsBf16WeightsInFp32Compute) {
  const std::string dir = shared("models/qwen2-tiny"), golden = dir + "/golden.safetensors";
  // A CPU without native bf16: auto computes in fp32 and says why in the output's header.
  const std::string out = path("auto.safetensors");
  Result r = run("forward --model " + dir + " --inputs " + golden + " --out " + out + " --weights-dtype bf16", "",
                 "FME_CPU_DISABLE=bf16");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // nothing to warn about
  auto a = SafetensorsFile::open(out);
  EXPECT_EQ(a->metadata().at("compute_dtype"), "fp32");
  EXPECT_EQ(a->metadata().at("weights_dtype"), "bf16");
  EXPECT_NE(a->metadata().at("compute_dtype_reason").find("no native bf16"), std::string::npos);
  // bf16 weights: close to the fp32 golden (the weights' rounding), not equal to it.
  auto b = SafetensorsFile::open(golden);
  const double err = max_abs_err_real(*a, *b, "blocks.2.hook_resid_post", "resid_post.2");
  EXPECT_GT(err, 0.0);
  EXPECT_LE(err, 0.05);
  // An explicit bf16 there: computed, with a one-line warning.
  r = run("forward --model " + dir + " --inputs " + golden + " --out " + path("bf16.safetensors") + " --dtype bf16", "",
          "FME_CPU_DISABLE=bf16");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
  EXPECT_EQ(SafetensorsFile::open(path("bf16.safetensors"))->metadata().at("compute_dtype"), "bf16");
  expect_error(run("forward --model " + dir + " --inputs " + golden + " --out " + path("x.safetensors") + " --dtype fp8"),
               {"--dtype", "fp8"}, path("x.safetensors"));
}

TEST_F(Cli, InitThenForwardOnTextsAndInspect) {
  const std::string model = path("m");
  Result r = run("init --preset qwen2-tiny --out " + model + " --seed 3");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(fs::path(model) / f)) << f;
  // Same seed, same bytes: init is deterministic.
  ASSERT_EQ(run("init --preset qwen2-tiny --out " + path("m2") + " --seed 3").code, 0);
  EXPECT_EQ(read_file(model + "/model.safetensors"), read_file(path("m2") + "/model.safetensors"));

  write_file_atomic(path("t.jsonl"), "{\"text\": \"hello world\"}\n{\"text\": \"<|im_start|>user\\nhi<|im_end|>\"}\n");
  r = run("forward --model " + model + " --texts " + path("t.jsonl") + " --out " + path("o.safetensors") + " --dtype bf16");
  ASSERT_EQ(r.code, 0) << r.err;
  auto o = SafetensorsFile::open(path("o.safetensors"));
  const auto& ids = o->get("input_ids");
  ASSERT_EQ(ids.shape.size(), 2u);
  EXPECT_EQ(ids.shape[0], 2);
  for (const char* n : {"blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.3.hook_resid_post",
                        "blocks.3.hook_mlp_out", "ln_final.hook_normalized"}) {
    const auto& t = o->get(n);
    EXPECT_EQ(t.dtype, DType::F32) << n;
    EXPECT_EQ(t.shape, (std::vector<int64_t>{2, ids.shape[1], 32})) << n;
  }
  EXPECT_EQ(o->get("blocks.1.attn.hook_z").shape, (std::vector<int64_t>{2, ids.shape[1], 4, 8}));
  EXPECT_EQ(o->find("blocks.4.hook_resid_post"), nullptr);
  // --hooks: only the points it names; a pattern that matches nothing is an error naming the valid ones.
  r = run("forward --model " + model + " --texts " + path("t.jsonl") + " --out " + path("h.safetensors") +
          " --hooks 'blocks.{1..2}.hook_resid_post,*.mlp.hook_post'");
  ASSERT_EQ(r.code, 0) << r.err;
  {
    auto h = SafetensorsFile::open(path("h.safetensors"));
    std::vector<std::string> names;
    for (const auto& t : h->tensors()) names.push_back(t.name);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"attention_mask", "blocks.0.mlp.hook_post", "blocks.1.hook_resid_post",
                                               "blocks.1.mlp.hook_post", "blocks.2.hook_resid_post",
                                               "blocks.2.mlp.hook_post", "blocks.3.mlp.hook_post", "input_ids"}));
  }
  expect_error(run("forward --model " + model + " --texts " + path("t.jsonl") + " --out " + path("h2.safetensors") +
                   " --hooks blocks.9.hook_resid_post"),
               {"--hooks", "blocks.9.hook_resid_post", "blocks.{0..3}", "ln_final.hook_normalized"}, path("h2.safetensors"));

  r = run("inspect " + model);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("model.embed_tokens.weight"), std::string::npos) << r.out;  // tied alias line
  EXPECT_NE(r.out.find("q_proj"), std::string::npos);
  EXPECT_NE(r.out.find("[151936, 32]"), std::string::npos);
}

// A BertForMaskedLM checkpoint ("bert." prefix, MLM head) shows its real tensors, the head included, with the
// decoder's ties to the embeddings.
TEST_F(Cli, InspectShowsBertForMaskedLMCheckpoints) {
  const std::string dir = path("mlm");
  fs::create_directories(dir);
  fs::copy(shared("models/bert-tiny/config.json"), dir + "/config.json");
  // train_model.safetensors is a BertForMaskedLM state without its word embeddings (left out to stay small):
  // put them back under their BertForMaskedLM name.
  auto mlm = SafetensorsFile::open(shared("models/bert-tiny/train_model.safetensors"));
  auto base = SafetensorsFile::open(shared("models/bert-tiny/model.safetensors"));
  SafetensorsWriter w;
  for (const auto& t : mlm->tensors()) w.add(t.name, t.dtype, t.shape, mlm->data(t), t.end - t.begin);
  const auto& emb = base->get("embeddings.word_embeddings.weight");
  w.add("bert.embeddings.word_embeddings.weight", emb.dtype, emb.shape, base->data(emb), emb.end - emb.begin);
  w.set_metadata("format", "pt");
  w.write(dir + "/model.safetensors");
  Result r = run("inspect " + dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("(missing)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("checkpoint names: '*' stored as 'bert.*'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tied: cls.predictions.decoder.weight = embeddings.word_embeddings.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bias                        [30522]"), std::string::npos) << r.out;  // cls.predictions.bias
  EXPECT_EQ(r.out.find("not loaded"), std::string::npos) << r.out;
  // The model loads from it too (forward runs on its golden inputs).
  r = run("forward --model " + dir + " --inputs " + shared("models/bert-tiny/golden.safetensors") + " --out " +
          path("o.safetensors") + " --dtype fp32 --hooks blocks.1.hook_resid_post");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_LE(max_abs_err_real(*SafetensorsFile::open(path("o.safetensors")),
                             *SafetensorsFile::open(shared("models/bert-tiny/hooks.safetensors")), "blocks.1.hook_resid_post"),
            1e-4);
  // Without a pooler there is no pooler_output to ask for.
  expect_error(run("forward --model " + dir + " --inputs " + shared("models/bert-tiny/golden.safetensors") + " --out " +
                   path("p.safetensors") + " --hooks pooler_output"),
               {"pooler_output", "matches no hook point"}, path("p.safetensors"));
}

TEST_F(Cli, EverySubcommandHasHelp) {
  for (std::string sub : {"", "init", "inspect", "tokenize", "forward", "extract", "prepare", "bench extract"}) {
    Result r = run(sub + " --help");
    EXPECT_EQ(r.code, 0) << sub;
    EXPECT_NE(r.out.find("--help"), std::string::npos) << sub;
  }
  EXPECT_NE(run("extract --help").out.find("auto"), std::string::npos);
  EXPECT_NE(run("").code, 0);
  EXPECT_NE(run("no-such-command").code, 0);
}

// Benchmark programs print their usage for --help (and run nothing), and refuse unknown options.
TEST_F(Cli, BenchmarkProgramsHaveHelp) {
  for (std::string prog : {"bench_forward", "bench_memory_floor", "bench_tokenizer"}) {
    const std::string exe = std::string(FME_BINARY_DIR) + "/bin/" + prog;
    const std::string log = path(prog + ".out");
    int status = std::system((exe + " --help >" + log + " 2>&1").c_str());
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << prog;
    const std::string out = read_file(log);
    EXPECT_NE(out.find("--help"), std::string::npos) << prog << ": " << out;
    EXPECT_EQ(out.find("tokens_per_s"), std::string::npos) << prog << " ran a benchmark: " << out;
    status = std::system((exe + " --no-such-option >/dev/null 2>&1").c_str());
    EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << prog;
  }
}

TEST_F(Cli, BadSafetensorsInputsAreOneLineErrorsNamingTheFile) {
  const std::string model = shared("models/qwen2-tiny");
  const std::string out = path("out.safetensors");
  auto bad = [&](const std::string& name, const std::string& bytes, std::initializer_list<std::string> needles) {
    const std::string p = path(name);
    std::ofstream(p, std::ios::binary) << bytes;
    std::vector<std::string> n(needles);
    n.push_back(p);
    Result r = run("forward --model " + model + " --inputs " + p + " --out " + out);
    SCOPED_TRACE(name);
    expect_error(r, {p}, out);
    for (const auto& s : n) EXPECT_NE(r.err.find(s), std::string::npos) << r.err;
  };
  auto with_header = [](const std::string& json, size_t data_bytes) {
    std::string s(8, '\0');
    uint64_t n = json.size();
    std::memcpy(s.data(), &n, 8);
    return s + json + std::string(data_bytes, '\0');
  };
  bad("truncated.safetensors", std::string("\x10\x00\x00", 3), {"truncated"});
  bad("past_end.safetensors", with_header(R"({"input_ids":{"dtype":"I64","shape":[1,2],"data_offsets":[0,16]}})", 8), {"input_ids"});
  bad("unknown_dtype.safetensors", with_header(R"({"input_ids":{"dtype":"Q64","shape":[1,1],"data_offsets":[0,8]}})", 8), {"Q64"});
  bad("not_json.safetensors", with_header("{not json", 0), {"JSON"});
  bad("overlap.safetensors",
      with_header(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8),
      {});
}

TEST_F(Cli, IdsOutsideTheVocabularyAndShapeMismatchesAreRejected) {
  const std::string model = shared("models/qwen2-tiny");  // vocab 512
  const std::string out = path("out.safetensors");
  std::string in = inputs({1, 2, 512}, {1, 1, 1}, {1, 3}, {1, 3});
  expect_error(run("forward --model " + model + " --inputs " + in + " --out " + out), {in, "512", "vocabulary"}, out);
  in = inputs({1, 2, 3, 4}, {1, 1, 1}, {1, 4}, {1, 3});
  expect_error(run("forward --model " + model + " --inputs " + in + " --out " + out), {in, "attention_mask", "[1, 3]", "[1, 4]"}, out);
  in = inputs({1, 2, 3}, {0, 1, 1}, {1, 3}, {1, 3});
  expect_error(run("forward --model " + model + " --inputs " + in + " --out " + out), {in, "right-padded"}, out);
}

TEST_F(Cli, BadConfigsAreNamed) {
  const std::string out = path("out.safetensors");
  const std::string golden = shared("models/qwen2-tiny/golden.safetensors");
  Json config = read_json_file(shared("models/qwen2-tiny/config.json"));
  auto model_with = [&](const Json& c) {
    fs::path m = dir_ / "model";
    fs::remove_all(m);
    fs::create_directories(m);
    fs::copy_file(shared("models/qwen2-tiny/model.safetensors"), m / "model.safetensors");
    write_file_atomic((m / "config.json").string(), c.dump());
    return m.string();
  };
  Json missing = config;
  missing.erase("num_key_value_heads");
  std::string m = model_with(missing);
  expect_error(run("forward --model " + m + " --inputs " + golden + " --out " + out), {m + "/config.json", "num_key_value_heads"}, out);
  Json other = config;
  other["model_type"] = "gpt_neox";
  m = model_with(other);
  expect_error(run("forward --model " + m + " --inputs " + golden + " --out " + out),
               {m + "/config.json", "gpt_neox", "supported: llama, mistral, qwen2, qwen3, gemma2, gpt2, bert"}, out);
  // A Qwen2 checkpoint relabelled llama: its q/k/v biases are not parameters of a bias-free Llama.
  other["model_type"] = "llama";
  m = model_with(other);
  expect_error(run("forward --model " + m + " --inputs " + golden + " --out " + out),
               {"model.layers.0.self_attn.k_proj.bias", "unexpected tensor", "llama"}, out);
}

TEST_F(Cli, TokenizeMatchesHFIdsAndRejectsUnsupportedTokenizers) {
  const std::string docs = shared("text/dolma-cc-sample/cc_en_head-0091.jsonl");
  Result r = run("tokenize --tokenizer " + shared("tokenizers/qwen2.5"), docs);
  ASSERT_EQ(r.code, 0) << r.err;
  std::map<int, std::vector<int64_t>> want;
  std::ifstream ref(shared("text/dolma-cc-sample/cc_en_head-0091.token_ids.jsonl"));
  for (std::string line; std::getline(ref, line);) {
    Json j = Json::parse(line);
    if (j["tokenizer"] == "qwen2.5") want[j["doc"].get<int>()] = j["ids"].get<std::vector<int64_t>>();
  }
  std::istringstream got(r.out);
  int doc = 0;
  for (std::string line; std::getline(got, line); ++doc) EXPECT_EQ(Json::parse(line)["ids"].get<std::vector<int64_t>>(), want.at(doc)) << doc;
  EXPECT_EQ(doc, static_cast<int>(want.size()));

  Json tok = read_json_file(shared("tokenizers/bert-base-uncased/tokenizer.json"));
  tok["model"] = {{"type", "Unigram"}, {"vocab", Json::array()}};
  const std::string tdir = path("tok");
  fs::create_directories(tdir);
  write_file_atomic(tdir + "/tokenizer.json", tok.dump());
  expect_error(run("tokenize --tokenizer " + tdir, docs), {tdir + "/tokenizer.json", "Unigram"});
}

}  // namespace
}  // namespace fme

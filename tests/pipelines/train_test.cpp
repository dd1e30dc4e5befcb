// `fme train` against Hugging Face transformers' own training step: ../shared/data/models/*/train.safetensors
// hold HF's logits, loss, every gradient and the weights after one torch.optim.AdamW step (lr 1e-2, betas
// 0.9/0.999, eps 1e-8, weight decay 0.01) on the golden inputs, with dropout 0, for all six tiny models
// (bert-tiny as BertForMaskedLM, its head in train_model.safetensors). Plus gradient accumulation, and the
// errors a user meets first.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "dist/launch_env.h"
#include "models/loader.h"
#include "models/tensor_io.h"
#include "pipelines/train/fixed_batch.h"
#include "pipelines/train/loss.h"
#include "util/error.h"
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

class Train : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fme-train-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& n) const { return (dir_ / n).string(); }

  // `env`: VAR=value words set for this command only.
  Out fme(const std::string& args, const std::string& env = "") {
    const std::string cmd = env + " timeout 300 " + kFme + " " + args + " --threads 1 >" + path("stdout") + " 2>" + path("stderr");
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(path("stdout")), read_file(path("stderr"))};
  }

  // The model HF trained: the tiny model itself, or for BERT a BertForMaskedLM directory holding
  // train_model.safetensors' tensors plus the word embeddings it leaves out (model.safetensors').
  std::string trained_model(const std::string& name) {
    const std::string dir = shared("models/" + name);
    if (name != "bert-tiny") return dir;
    const std::string out = path("bert-mlm");
    fs::create_directories(out);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& [n, t] : read_safetensors(dir + "/train_model.safetensors")) tensors.emplace_back(n, t);
    tensors.emplace_back("bert.embeddings.word_embeddings.weight",
                         read_safetensors(dir + "/model.safetensors").at("embeddings.word_embeddings.weight"));
    write_safetensors(out + "/model.safetensors", tensors);
    Json config = Json::parse(read_file(dir + "/config.json"));
    config["architectures"] = {"BertForMaskedLM"};
    write_file_atomic(out + "/config.json", config.dump(2));
    return out;
  }

  fs::path dir_;
};

// The golden's optimizer settings, fp32, no dropout, one step.
const std::string kGoldenStep =
    " --steps 1 --optimizer adamw --lr 1e-2 --betas 0.9,0.999 --eps 1e-8 --weight-decay 0.01 --precision fp32 --dropout 0 --quiet";

// Rows of a tensor with a vocabulary dimension that the golden keeps (BERT: vocab_rows), else the tensor.
at::Tensor golden_rows(const at::Tensor& t, const std::map<std::string, at::Tensor>& golden, int64_t vocab) {
  auto it = golden.find("vocab_rows");
  if (it == golden.end() || t.dim() == 0 || t.size(0) != vocab) return t;
  return t.index_select(0, it->second);
}

class TrainParity : public Train, public ::testing::WithParamInterface<const char*> {};

TEST_P(TrainParity, LogitsLossGradientsAndOneAdamWStepMatchHF) {
  const std::string name = GetParam();
  const auto golden = read_safetensors(shared("models/" + name + "/train.safetensors"));
  const std::string model_dir = trained_model(name);
  const std::string inputs = shared("models/" + name + "/train.safetensors");

  // Logits and loss, through the library: the training forward with autograd, then HF's loss.
  auto model = load_model(model_dir, at::kFloat);
  const LabeledBatch batch = read_fixed_batch(inputs, *model);
  const Objective objective = name == "bert-tiny" ? Objective::MaskedLM : Objective::Causal;
  {
    const at::Tensor logits = model->logits(batch.batch);  // [B,T,V]
    at::Tensor ref = golden.at("logits");
    at::Tensor mine = golden.count("vocab_rows") ? logits.index_select(2, golden.at("vocab_rows")) : logits;
    const at::Tensor real = batch.batch.attention_mask.to(at::kBool);  // padded positions are not meaningful
    const double err = (mine - ref).abs().masked_select(real.unsqueeze(-1)).max().item<double>();
    EXPECT_LE(err, 1e-5) << name << " logits";
    const LossSum ls = cross_entropy_sum(logits, batch.labels, objective);
    const double loss = ls.sum.item<double>() / static_cast<double>(ls.tokens);
    EXPECT_NEAR(loss, golden.at("loss").item<double>(), 1e-5) << name << " loss";
  }

  // Gradients and the step, through the CLI as a user runs it.
  const Out r = fme("train --model " + model_dir + " --inputs " + inputs + " --out " + path("run") + " --dump-grads " +
                    path("grads.safetensors") + kGoldenStep);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto grads = read_safetensors(path("grads.safetensors"));
  const auto after = read_safetensors(path("run/final/model.safetensors"));
  int64_t n_grads = 0, n_after = 0;
  const int64_t V = model->vocab_size();
  for (const auto& [key, ref] : golden) {
    if (key.rfind("grad.", 0) == 0) {
      ASSERT_TRUE(grads.count(key)) << name << ": fme wrote no " << key;
      const double err = (golden_rows(grads.at(key), golden, V) - ref).abs().max().item<double>();
      EXPECT_LE(err, 1e-5) << name << " " << key;
      ++n_grads;
    } else if (key.rfind("after_step.", 0) == 0) {
      const std::string param = key.substr(11);
      ASSERT_TRUE(after.count(param)) << name << ": final/model.safetensors has no " << param;
      // Where |grad| < 1e-6 AdamW's first step is sign(rounding noise) * lr: compared only elsewhere.
      const at::Tensor g = golden.at("grad." + param).abs().ge(1e-6);
      const at::Tensor diff = (golden_rows(after.at(param), golden, V) - ref).abs();
      const double err = diff.masked_select(g).numel() ? diff.masked_select(g).max().item<double>() : 0.0;
      EXPECT_LE(err, 1e-5) << name << " " << key;
      ++n_after;
    }
  }
  EXPECT_GT(n_grads, 10);
  EXPECT_EQ(n_grads, n_after);
  // Every gradient fme computed is one HF has (nothing extra, no parameter missed).
  int64_t fme_grads = 0;
  for (const auto& [key, t] : grads) fme_grads += key.rfind("grad.", 0) == 0;
  EXPECT_EQ(fme_grads, n_grads);

  // metrics.jsonl: one line for the step, its loss HF's.
  std::ifstream metrics(path("run/metrics.jsonl"));
  std::string line;
  ASSERT_TRUE(std::getline(metrics, line));
  const Json m = Json::parse(line);
  EXPECT_EQ(m.at("step").get<int64_t>(), 1);
  EXPECT_NEAR(m.at("loss").get<double>(), golden.at("loss").item<double>(), 1e-5);
  EXPECT_FALSE(std::getline(metrics, line));
  // final/ is an HF model directory fme loads again.
  EXPECT_NO_THROW(load_model(path("run/final"), at::kFloat));
}

INSTANTIATE_TEST_SUITE_P(Models, TrainParity,
                         ::testing::Values("qwen2-tiny", "bert-tiny", "llama-tiny", "qwen3-tiny", "gemma2-tiny", "gpt2-tiny"),
                         [](const auto& info) {
                           std::string n = info.param;
                           return n.substr(0, n.find('-'));
                         });

// Mixed precision (bf16 compute copies, the fused bf16 kernels: RMSNorm, RoPE, activations, masked softmax,
// cross-entropy, the sliced vocabulary head) against HF's fp32 gradients: each gradient within bf16's
// accuracy of the golden, |g - ref| <= 10% of |ref| over the tensor. bf16 keeps 8 bits: here the worst tensor
// was 4.4% off (gemma2's first RMSNorm), most under 2%; a kernel with a wrong sign, index or transpose is off
// by 100% or more. Plus 1e-6 RMS: a gradient that is zero in exact arithmetic is rounding noise in both
// (BERT's key bias, ~1e-13 RMS in HF's fp32 and ~5e-8 here: softmax ignores a constant added to a query's
// scores). The loss within 1%.
class TrainBf16 : public Train, public ::testing::WithParamInterface<const char*> {};

TEST_P(TrainBf16, MixedPrecisionGradientsAreHFsToBf16Accuracy) {
  const std::string name = GetParam();
  const auto golden = read_safetensors(shared("models/" + name + "/train.safetensors"));
  const std::string model_dir = trained_model(name);
  const Out r = fme("train --model " + model_dir + " --inputs " + shared("models/" + name + "/train.safetensors") + " --out " +
                    path("run") + " --dump-grads " + path("grads.safetensors") +
                    " --steps 1 --optimizer adamw --lr 1e-2 --precision bf16-mixed --dropout 0 --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto grads = read_safetensors(path("grads.safetensors"));
  const int64_t V = load_model(model_dir, at::kFloat)->vocab_size();
  int64_t n = 0;
  for (const auto& [key, ref] : golden) {
    if (key.rfind("grad.", 0) != 0) continue;
    ASSERT_TRUE(grads.count(key)) << name << ": fme wrote no " << key;
    const at::Tensor mine = golden_rows(grads.at(key), golden, V).to(at::kDouble), want = ref.to(at::kDouble);
    const double floor = 1e-6 * std::sqrt(static_cast<double>(want.numel()));
    EXPECT_LE((mine - want).norm().item<double>(), 0.1 * want.norm().item<double>() + floor) << name << " " << key;
    ++n;
  }
  EXPECT_GT(n, 10);
  std::ifstream metrics(path("run/metrics.jsonl"));
  std::string line;
  ASSERT_TRUE(std::getline(metrics, line));
  const double loss = golden.at("loss").item<double>();
  EXPECT_NEAR(Json::parse(line).at("loss").get<double>(), loss, 0.01 * loss) << name;
}

INSTANTIATE_TEST_SUITE_P(Models, TrainBf16,
                         ::testing::Values("qwen2-tiny", "bert-tiny", "llama-tiny", "qwen3-tiny", "gemma2-tiny", "gpt2-tiny"),
                         [](const auto& info) {
                           std::string n = info.param;
                           return n.substr(0, n.find('-'));
                         });

// Micro-batches weighted by their counted tokens give the whole batch's loss and gradients. Compared over
// 3 SGD steps, where the weights follow the gradients linearly (AdamW's first steps turn the rounding noise
// of near-zero gradients into full-size updates, as the goldens' READMEs note).
// bf16 logits take the fused loss (loss.cpp): its sum and gradient against log_softmax and nll in fp64 on the
// same bf16 values, for both objectives, ignored labels included, at a vocabulary with ragged tails.
TEST(Loss, FusedBf16CrossEntropyMatchesFp64) {
  at::manual_seed(11);
  const int64_t B = 2, T = 37, V = 1001;
  const at::Tensor logits = (at::randn({B, T, V}) * 4).to(at::kBFloat16);
  at::Tensor labels = at::randint(0, V, {B, T}, at::kLong);
  labels.index_put_({at::rand({B, T}).lt(0.3)}, -100);
  for (Objective objective : {Objective::Causal, Objective::MaskedLM}) {
    at::Tensor x = logits.clone().set_requires_grad(true);
    const LossSum fused = cross_entropy_sum(x, labels, objective);
    fused.sum.backward();
    // The reference: HF's shift for next-token, in fp64.
    at::Tensor xd = logits.to(at::kDouble).set_requires_grad(true);
    at::Tensor xs = xd, ys = labels;
    if (objective == Objective::Causal) xs = xd.narrow(1, 0, T - 1), ys = labels.narrow(1, 1, T - 1);
    const at::Tensor ref = at::nll_loss(at::log_softmax(xs.reshape({-1, V}), -1), ys.reshape({-1}), {}, at::Reduction::Sum, -100);
    ref.backward();
    EXPECT_EQ(fused.tokens, ys.ne(-100).sum().item<int64_t>());
    EXPECT_EQ(fused.sum.scalar_type(), at::kFloat);
    EXPECT_NEAR(fused.sum.item<double>(), ref.item<double>(), 2e-6 * ref.item<double>()) << objective_name(objective);
    const at::Tensor g = x.grad().to(at::kDouble), gr = xd.grad();
    const double over = ((g - gr).abs() / (gr.abs() * (1.0 / 256) + 1e-7)).max().item<double>();
    EXPECT_LE(over, 1.0) << objective_name(objective) << ": gradient more than one bf16 rounding off";
    if (objective == Objective::Causal) {
      EXPECT_EQ(x.grad().select(1, T - 1).abs().max().item<float>(), 0.0f);  // predicts nothing
    }
  }
  at::Tensor bad = labels.clone();
  bad[0][5] = V;
  EXPECT_THROW(cross_entropy_sum(logits, bad, Objective::MaskedLM), ShapeError);
}

TEST_F(Train, GradientAccumulationEqualsTheWholeBatch) {
  for (const char* name : {"qwen2-tiny", "bert-tiny"}) {
    SCOPED_TRACE(name);
    const std::string model = shared(std::string("models/") + name), inputs = model + "/train.safetensors";
    const std::string common = " --steps 3 --optimizer sgd --lr 0.1 --precision fp32 --dropout 0 --quiet --model " + model +
                               " --inputs " + inputs;
    const std::string whole = path(std::string(name) + "-whole"), accum = path(std::string(name) + "-accum");
    ASSERT_EQ(fme("train --out " + whole + common + " --dump-grads " + whole + ".grads").code, 0);
    ASSERT_EQ(fme("train --out " + accum + common + " --grad-accum 2 --dump-grads " + accum + ".grads").code, 0);
    const auto a = read_safetensors(whole + "/final/model.safetensors");
    const auto b = read_safetensors(accum + "/final/model.safetensors");
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [k, t] : a) EXPECT_LE((t - b.at(k)).abs().max().item<double>(), 1e-6) << k;
    const auto g1 = read_safetensors(whole + ".grads"), g2 = read_safetensors(accum + ".grads");
    ASSERT_EQ(g1.size(), g2.size());
    for (const auto& [k, t] : g1) EXPECT_LE((t - g2.at(k)).abs().max().item<double>(), 1e-6) << k;
    std::ifstream ma(whole + "/metrics.jsonl"), mb(accum + "/metrics.jsonl");
    std::string la, lb;
    int steps = 0;
    while (std::getline(ma, la) && std::getline(mb, lb)) {
      EXPECT_NEAR(Json::parse(la).at("loss").get<double>(), Json::parse(lb).at("loss").get<double>(), 1e-6);
      ++steps;
    }
    EXPECT_EQ(steps, 3);
  }
}

TEST_F(Train, LossFallsOnAFixedBatchAndEveryStepIsLogged) {
  const Out r = fme("train --model " + shared("models/llama-tiny") + " --inputs " + shared("models/llama-tiny/train.safetensors") +
                    " --out " + path("run") + " --steps 5 --lr 1e-2 --warmup 2 --clip-norm 1.0 --dropout 0 --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  const Json summary = Json::parse(r.out);
  EXPECT_EQ(summary.at("steps").get<int64_t>(), 5);
  EXPECT_LT(summary.at("last_loss").get<double>(), summary.at("first_loss").get<double>());
  std::ifstream metrics(path("run/metrics.jsonl"));
  std::string line;
  int64_t n = 0;
  double first_lr = -1;
  while (std::getline(metrics, line)) {
    const Json m = Json::parse(line);
    EXPECT_EQ(m.at("step").get<int64_t>(), ++n);
    for (const char* k : {"loss", "lr", "grad_norm", "tokens", "tokens_per_s", "seconds"}) EXPECT_TRUE(m.contains(k)) << k;
    if (n == 1) first_lr = m.at("lr").get<double>();
  }
  EXPECT_EQ(n, 5);
  EXPECT_EQ(first_lr, 0.0);  // warmup starts from 0
  // tokens: real input tokens; loss_tokens: the positions the next-token loss counts (labels shifted by one)
  const auto golden = read_safetensors(shared("models/llama-tiny/train.safetensors"));
  const int64_t real = golden.at("attention_mask").sum().item<int64_t>();
  const int64_t counted = golden.at("labels").narrow(1, 1, golden.at("labels").size(1) - 1).ne(-100).sum().item<int64_t>();
  EXPECT_EQ(summary.at("tokens").get<int64_t>(), 5 * real);
  EXPECT_EQ(summary.at("loss_tokens").get<int64_t>(), 5 * counted);
}

TEST_F(Train, ABertModelCheckpointGainsAnInitialisedMaskedLMHead) {
  // A BertModel directory (pooler, no cls.*, a tokenizer) as fme init writes it: training MLM adds the head.
  ASSERT_EQ(fme("init --preset bert-tiny --out " + path("bert")).code, 0);
  const Out r = fme("train --model " + path("bert") + " --inputs " + shared("models/bert-tiny/train.safetensors") +
                    " --out " + path("run") + " --steps 2 --dropout 0 --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto saved = read_safetensors(path("run/final/model.safetensors"));
  EXPECT_EQ(saved.count("cls.predictions.transform.dense.weight"), 1u);
  EXPECT_EQ(saved.count("bert.embeddings.word_embeddings.weight"), 1u);
  const Json config = Json::parse(read_file(path("run/final/config.json")));
  EXPECT_EQ(config.at("architectures")[0].get<std::string>(), "BertForMaskedLM");
  // The source's tokenizer files travel with the model.
  for (const auto& e : fs::directory_iterator(path("bert"))) {
    if (e.path().filename() != "model.safetensors" && e.path().filename() != "config.json") {
      EXPECT_TRUE(fs::exists(path("run/final") / e.path().filename())) << e.path().filename();
    }
  }
  auto model = load_model(path("run/final"), at::kFloat);
  EXPECT_NO_THROW(model->logits(read_fixed_batch(shared("models/bert-tiny/train.safetensors"), *model).batch));
}

// --dropout auto takes the config's probabilities (a BERT preset's are HF's 0.1): the run is reproducible
// from its seed, and differs from one without dropout.
TEST_F(Train, DropoutFollowsTheConfigAndIsReproducible) {
  const std::string common = "train --model-preset bert-tiny --inputs " + shared("models/bert-tiny/train.safetensors") +
                             " --steps 2 --precision fp32 --quiet --seed 7";
  ASSERT_EQ(fme(common + " --out " + path("a")).code, 0);
  ASSERT_EQ(fme(common + " --out " + path("b")).code, 0);
  ASSERT_EQ(fme(common + " --out " + path("c") + " --dropout 0").code, 0);
  EXPECT_EQ(read_file(path("a/final/model.safetensors")), read_file(path("b/final/model.safetensors")));
  auto first_loss = [&](const std::string& run) {
    std::ifstream m(path(run + "/metrics.jsonl"));
    std::string line;
    std::getline(m, line);
    return Json::parse(line).at("loss").get<double>();
  };
  EXPECT_EQ(first_loss("a"), first_loss("b"));
  EXPECT_GT(std::abs(first_loss("a") - first_loss("c")), 1e-4);
}

TEST_F(Train, BadInputIsAOneLineErrorNamingTheFileAndField) {
  const std::string model = " --model " + shared("models/qwen2-tiny");
  const std::string inputs = shared("models/qwen2-tiny/train.safetensors");
  auto golden = read_safetensors(inputs);

  // labels of the wrong shape
  write_safetensors(path("bad_labels.safetensors"), {{"input_ids", golden.at("input_ids")},
                                                     {"labels", golden.at("labels").narrow(1, 0, 5)}});
  Out r = fme("train" + model + " --inputs " + path("bad_labels.safetensors") + " --out " + path("r1") + " --dropout 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("bad_labels.safetensors: tensor 'labels' has shape [4, 5]"), std::string::npos) << r.err;

  // ids past the vocabulary
  write_safetensors(path("bad_ids.safetensors"), {{"input_ids", golden.at("input_ids") + 100000}, {"labels", golden.at("labels")}});
  r = fme("train" + model + " --inputs " + path("bad_ids.safetensors") + " --out " + path("r2") + " --dropout 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("tensor 'input_ids' holds ids outside the vocabulary [0, 512)"), std::string::npos) << r.err;

  // a non-empty --out
  fs::create_directories(path("full"));
  write_file_atomic(path("full/x"), "x");
  r = fme("train" + model + " --inputs " + inputs + " --out " + path("full") + " --dropout 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("exists and is not empty"), std::string::npos) << r.err;

  // an objective the model's head is not for
  r = fme("train" + model + " --inputs " + inputs + " --out " + path("r5") + " --objective mlm");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("qwen2 trains with the causal objective"), std::string::npos) << r.err;

  // an unknown --dropout
  r = fme("train" + model + " --inputs " + inputs + " --out " + path("r3") + " --dropout 0.5");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--dropout '0.5': expected auto or 0"), std::string::npos) << r.err;

  // --resume of a directory that is not there
  r = fme("train" + model + " --inputs " + inputs + " --out " + path("nothing") + " --resume");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("nothing: no such run directory to --resume"), std::string::npos) << r.err;

  // a dataset without the text field, and one that is not there
  { std::ofstream(path("notext.jsonl")) << "{\"body\": \"x\"}\n"; }
  r = fme("train --model-preset qwen2-tiny --dataset " + path("notext.jsonl") + " --steps 1 --out " + path("r6"));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("notext.jsonl: cannot tell the dataset kind from line 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\"text\" field"), std::string::npos) << r.err;
  r = fme("train --model-preset qwen2-tiny --dataset " + path("none.jsonl") + " --steps 1 --out " + path("r7"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("none.jsonl: no such file (--dataset)"), std::string::npos) << r.err;

  // a mesh the launched processes do not make up, and one with an axis training has no use for, say so
  r = fme("train" + model + " --inputs " + inputs + " --mesh dp=2 --out " + path("r4"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("mesh dp=2 has 2 processes but WORLD_SIZE is 1"), std::string::npos) << r.err;
  const int code = dist::run_local_world(2, "timeout 120 " + kFme + " train" + model + " --inputs " + inputs +
                                                " --mesh pp=2 --timeout 30 --threads 1 --out " + path("r8"), path("pp"), false);
  EXPECT_EQ(code, 1);
  EXPECT_NE(read_file(path("pp0.err")).find("--mesh pp=2: training runs over a dp and a tp axis"), std::string::npos)
      << read_file(path("pp0.err"));
}

// metrics.jsonl without its timing fields: what a resumed run must reproduce line for line.
std::vector<std::string> metrics_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    Json j = Json::parse(line);
    j.erase("seconds");
    j.erase("tokens_per_s");
    out.push_back(j.dump());
  }
  return out;
}

// kill -9 at chosen moments (named failpoints inside a checkpoint write, and from outside at whatever the
// run is doing once it has logged k steps), then --resume: the final weights are byte-identical to an
// uninterrupted run's and metrics.jsonl has the same lines. BERT with its dropout on (the masks must follow
// (seed, step)), Qwen2 with warmup-cosine and clipping (the schedule must continue where it was).
TEST_F(Train, ResumeAfterKillNineEndsByteIdentical) {
  for (const std::string name : {"bert-tiny", "qwen2-tiny"}) {
    SCOPED_TRACE(name);
    const std::string model = name == "bert-tiny" ? trained_model(name) : shared("models/" + name);
    const std::string args = "train --model " + model + " --inputs " + shared("models/" + name + "/train.safetensors") +
                             " --steps 7 --lr 1e-2 --warmup 2 --clip-norm 1.0 --precision fp32 --seed 3 --quiet" +
                             " --checkpoint-every 2 --keep-last 2";
    const std::string ref = path(name + "-ref");
    ASSERT_EQ(fme(args + " --out " + ref).code, 0);
    const std::string want = read_file(ref + "/final/model.safetensors");
    const auto want_metrics = metrics_lines(ref + "/metrics.jsonl");
    ASSERT_EQ(want_metrics.size(), 7u);
    int checked = 0;
    auto resume_and_compare = [&](const std::string& out, const std::string& what) {
      SCOPED_TRACE(what);
      const Out r = fme(args + " --out " + out + " --resume");
      ASSERT_EQ(r.code, 0) << r.err;
      EXPECT_TRUE(read_file(out + "/final/model.safetensors") == want) << "weights differ from the uninterrupted run";
      EXPECT_EQ(metrics_lines(out + "/metrics.jsonl"), want_metrics);
      ++checked;
    };
    // Inside checkpoint writes: after the model file of the first, between the files and the index of the
    // second, after the third (the last: the run dies before final/).
    for (const std::string point : {"train.checkpoint.model_written@1", "train.checkpoint.files_written@2",
                                    "train.checkpoint.committed@3"}) {
      const std::string out = path(name + "-" + point);
      const Out r = fme(args + " --out " + out, "FME_FAILPOINT=" + point);
      ASSERT_EQ(r.code, 128 + SIGKILL) << point << " did not kill the run: " << r.err;
      EXPECT_FALSE(fs::exists(out + "/final")) << point;
      resume_and_compare(out, point);
    }
    // From outside, once k steps are logged: wherever the run is then (a step, a checkpoint, final/).
    int killed = 0;
    for (int k : {1, 4, 6}) {
      const std::string out = path(name + "-kill" + std::to_string(k));
      const std::string cmd = "(" + kFme + " " + args + " --threads 1 --out " + out + " >/dev/null 2>&1 & pid=$!; " +
                              "while [ \"$(cat " + out + "/metrics.jsonl 2>/dev/null | wc -l)\" -lt " + std::to_string(k) +
                              " ] && kill -0 $pid 2>/dev/null; do sleep 0.001; done; kill -9 $pid 2>/dev/null; wait $pid) 2>/dev/null";
      const int status = std::system(cmd.c_str());
      if (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL) ++killed;
      resume_and_compare(out, "killed after " + std::to_string(k) + " logged steps");
    }
    // A resume that is itself killed, then resumed.
    {
      const std::string out = path(name + "-twice");
      ASSERT_EQ(fme(args + " --out " + out, "FME_FAILPOINT=train.checkpoint.committed@1").code, 128 + SIGKILL);
      ASSERT_EQ(fme(args + " --out " + out + " --resume", "FME_FAILPOINT=train.checkpoint.files_written@1").code, 128 + SIGKILL);
      resume_and_compare(out, "resume killed too");
    }
    EXPECT_EQ(checked, 7);
    EXPECT_GE(killed, 2) << "the kills from outside should land while the run is going";
    // --keep-last 2: the two newest checkpoints, each whole.
    std::vector<std::string> kept;
    for (const auto& e : fs::directory_iterator(ref + "/checkpoints")) kept.push_back(e.path().filename().string());
    std::sort(kept.begin(), kept.end());
    EXPECT_EQ(kept, (std::vector<std::string>{"step-00000004", "step-00000006"}));
    const Json index = Json::parse(read_file(ref + "/checkpoints/step-00000006/index.json"));
    EXPECT_EQ(index.at("step").get<int64_t>(), 6);
    EXPECT_EQ(index.at("mesh").at("world_size").get<int64_t>(), 1);
  }
}

TEST_F(Train, ResumeRefusesOtherSettingsAndAStaleMetricsFile) {
  const std::string model = shared("models/qwen2-tiny");
  const std::string args = "train --model " + model + " --inputs " + model + "/train.safetensors --steps 4 --quiet --dropout 0" +
                           " --checkpoint-every 2 --out " + path("run");
  ASSERT_EQ(fme(args + " --lr 1e-2").code, 0);
  Out r = fme(args + " --lr 2e-2 --resume");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("step-00000004: made with other settings"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("lr: checkpoint 0.01, now 0.02"), std::string::npos) << r.err;
  r = fme("train --model-preset qwen2-tiny --inputs " + model + "/train.safetensors --steps 4 --quiet --dropout 0 --lr 1e-2" +
          " --checkpoint-every 2 --out " + path("run") + " --resume");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("model_preset: checkpoint null, now \"qwen2-tiny\""), std::string::npos) << r.err;
  // A damaged newest checkpoint is passed over for the one before; metrics.jsonl cut shorter than a
  // checkpoint's lines is refused.
  const std::string newest = path("run/checkpoints/step-00000004/optimizer.rank-00000.safetensors");
  std::string bytes = read_file(newest);
  bytes[bytes.size() - 1] ^= 1;
  { std::ofstream(newest, std::ios::binary) << bytes; }
  r = fme(args + " --lr 1e-2 --resume");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out).at("resumed_from").get<int64_t>(), 2);
  fs::resize_file(path("run/metrics.jsonl"), 10);
  r = fme(args + " --lr 1e-2 --resume");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("metrics.jsonl: 10 bytes, shorter than"), std::string::npos) << r.err;
}

// The events TensorBoard would read from RUN_DIR/tensorboard, through tests/pipelines/tfevents_reader.py
// (Debian's protobuf and crcmod, not fme's code), files in name order as TensorBoard takes them.
std::vector<Json> tensorboard_events(const std::string& run_dir) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(run_dir + "/tensorboard")) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  std::string cmd = "/usr/bin/python3 " FME_SOURCE_DIR "/tests/pipelines/tfevents_reader.py";
  for (const auto& f : files) cmd += " " + f;
  const std::string out = run_dir + "/tensorboard.jsonl";
  EXPECT_EQ(std::system((cmd + " >" + out).c_str()), 0) << cmd;
  std::vector<Json> events;
  std::ifstream in(out);
  for (std::string line; std::getline(in, line);) events.push_back(Json::parse(line));
  return events;
}

// Scalars by (tag, step) as TensorBoard shows them: a SessionLog START at step s drops the steps >= s read
// before it (its purge of orphaned data, what a resumed run relies on).
std::map<std::pair<std::string, int64_t>, double> tensorboard_scalars(const std::vector<Json>& events) {
  std::map<std::pair<std::string, int64_t>, double> out;
  for (const Json& e : events) {
    const int64_t step = e.at("step").get<int64_t>();
    if (e.contains("session_log") && e.at("session_log").get<int>() == 1) {
      for (auto it = out.begin(); it != out.end();) it = it->first.second >= step ? out.erase(it) : std::next(it);
    }
    if (e.contains("scalars"))
      for (const auto& [tag, v] : e.at("scalars").items()) out[{tag, step}] = v.get<double>();
  }
  return out;
}

TEST_F(Train, TensorBoardEventFilesHoldEveryStepsScalars) {
  const std::string model = shared("models/qwen2-tiny");
  const std::string args = "train --model " + model + " --inputs " + model + "/train.safetensors --steps 5 --quiet --dropout 0" +
                           " --lr 1e-2 --warmup 2 --checkpoint-every 2 --out " + path("run");
  ASSERT_EQ(fme(args).code, 0);
  const std::vector<Json> events = tensorboard_events(path("run"));
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0].value("file_version", ""), "brain.Event:2");
  const auto scalars = tensorboard_scalars(events);
  const auto lines = [&] {
    std::vector<Json> v;
    std::ifstream in(path("run/metrics.jsonl"));
    for (std::string line; std::getline(in, line);) v.push_back(Json::parse(line));
    return v;
  }();
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(scalars.size(), 5u * 4);
  for (const Json& l : lines) {
    const int64_t step = l.at("step").get<int64_t>();
    for (const char* key : {"loss", "lr", "grad_norm", "tokens_per_s"}) {
      auto it = scalars.find({std::string("train/") + key, step});
      ASSERT_NE(it, scalars.end()) << key << " at step " << step;
      const double want = l.at(key).get<double>();
      EXPECT_NEAR(it->second, want, 1e-6 * std::max(1.0, std::abs(want))) << key << " at step " << step;  // stored as float
    }
  }
  // Killed after step 4's checkpoint, resumed: a second file, whose START at step 5 makes TensorBoard show
  // each step once, with the resumed run's values.
  const std::string out2 = path("run2");
  ASSERT_EQ(fme(args.substr(0, args.find(" --out ")) + " --out " + out2, "FME_FAILPOINT=train.checkpoint.committed@2").code, 128 + SIGKILL);
  ASSERT_EQ(fme(args.substr(0, args.find(" --out ")) + " --out " + out2 + " --resume").code, 0);
  const std::vector<Json> resumed = tensorboard_events(out2);
  int restarts = 0;
  for (const Json& e : resumed)
    if (e.contains("session_log")) {
      ++restarts;
      EXPECT_EQ(e.at("step").get<int64_t>(), 5);
    }
  EXPECT_EQ(restarts, 1);
  const auto after = tensorboard_scalars(resumed);
  ASSERT_EQ(after.size(), scalars.size());
  for (const auto& [k, v] : scalars) {
    if (k.first == "train/tokens_per_s") continue;  // a timing
    EXPECT_EQ(after.at(k), v) << k.first << " at step " << k.second;
  }
}

// Short documents of real web text, one JSON line each (text-jsonl).
std::string write_text_docs(const std::string& path, int n, size_t max_chars) {
  std::ifstream in(shared("text/fineweb-legal-sample/batch_000001.jsonl"));
  std::ofstream out(path);
  int written = 0;
  for (std::string line; written < n && std::getline(in, line); ++written) {
    std::string text = Json::parse(line).at("text").get<std::string>();
    text = text.substr(0, std::min(text.size(), max_chars));
    while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80) text.pop_back();  // whole UTF-8
    if (!text.empty() && static_cast<unsigned char>(text.back()) >= 0xC0) text.pop_back();
    out << Json{{"text", text}}.dump() << "\n";
  }
  return path;
}

// Packing: a row holding several documents gives the loss and gradients of the same documents one per row
// (segments keep attention within a document, positions restart, no label crosses a boundary; BERT's
// masks follow the tokens, not their rows). For a decoder with RoPE and for BERT with learned positions.
TEST_F(Train, APackedRowEqualsItsDocumentsOnePerRow) {
  for (const std::string preset : {"qwen2-tiny", "bert-tiny"}) {
    SCOPED_TRACE(preset);
    const std::string model = path(preset);
    ASSERT_EQ(fme("init --preset " + preset + " --out " + model + " --seed 2").code, 0);
    const std::string docs = write_text_docs(path("docs.jsonl"), 4, 60);
    const std::string common = "train --model " + model + " --dataset " + docs + " --seq-len 128 --steps 1 --optimizer sgd --lr 0.1" +
                               " --precision fp32 --dropout 0 --shuffle-buffer 0 --quiet --seed 11";
    const Out packed = fme(common + " --micro-batch 1 --out " + path(preset + "-packed") + " --dump-grads " + path(preset + "-packed.grads"));
    ASSERT_EQ(packed.code, 0) << packed.err;
    const Out rows = fme(common + " --micro-batch 4 --no-packing --out " + path(preset + "-rows") + " --dump-grads " + path(preset + "-rows.grads"));
    ASSERT_EQ(rows.code, 0) << rows.err;
    const Json a = Json::parse(packed.out), b = Json::parse(rows.out);
    EXPECT_EQ(a.at("tokens"), b.at("tokens")) << "the same documents";
    EXPECT_LT(a.at("tokens").get<int64_t>(), 128) << "all four documents fit in the one packed row";
    EXPECT_GT(a.at("loss_tokens").get<int64_t>(), 0);
    EXPECT_EQ(a.at("loss_tokens"), b.at("loss_tokens"));
    EXPECT_NEAR(a.at("first_loss").get<double>(), b.at("first_loss").get<double>(), 1e-5);
    const auto ga = read_safetensors(path(preset + "-packed.grads")), gb = read_safetensors(path(preset + "-rows.grads"));
    ASSERT_EQ(ga.size(), gb.size());
    for (const auto& [k, t] : ga) EXPECT_LE((t - gb.at(k)).abs().max().item<double>(), 1e-5) << k;
  }
}

// --dataset end to end: --epochs sets the steps, --eval-dataset adds eval lines (perplexity for a decoder),
// and a run killed mid-checkpoint resumes to the same bytes and lines, reading the data again to where it was.
TEST_F(Train, DatasetRunsEvaluateAndResumeByteIdentical) {
  const std::string model = path("qwen2");
  ASSERT_EQ(fme("init --preset qwen2-tiny --out " + model + " --seed 2").code, 0);
  const std::string docs = write_text_docs(path("docs.jsonl"), 12, 400);
  const std::string args = "train --model " + model + " --dataset " + docs + " --eval-dataset " + docs + " --eval-every 2" +
                           " --seq-len 64 --micro-batch 2 --grad-accum 2 --epochs 2 --lr 1e-2 --warmup 1 --shuffle-buffer 5" +
                           " --precision fp32 --quiet --checkpoint-every 2";
  const Out ref = fme(args + " --out " + path("ref"));
  ASSERT_EQ(ref.code, 0) << ref.err;
  const Json summary = Json::parse(ref.out);
  const int64_t steps = summary.at("steps").get<int64_t>();
  EXPECT_GE(steps, 4);
  EXPECT_TRUE(summary.at("eval").contains("eval_perplexity"));
  std::ifstream m(path("ref/metrics.jsonl"));
  int64_t evals = 0, lines = 0;
  for (std::string line; std::getline(m, line); ++lines) {
    const Json j = Json::parse(line);
    if (!j.contains("eval_loss")) continue;
    ++evals;
    EXPECT_NEAR(j.at("eval_perplexity").get<double>(), std::exp(j.at("eval_loss").get<double>()), 1e-6 * j.at("eval_perplexity").get<double>());
  }
  EXPECT_EQ(evals, steps / 2 + steps % 2);
  for (const std::string point : {"train.checkpoint.files_written@2", "train.checkpoint.committed@1"}) {
    const std::string out = path("killed-" + point);
    ASSERT_EQ(fme(args + " --out " + out, "FME_FAILPOINT=" + point).code, 128 + SIGKILL);
    const Out r = fme(args + " --out " + out + " --resume");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(read_file(out + "/final/model.safetensors") == read_file(path("ref/final/model.safetensors"))) << point;
    EXPECT_EQ(metrics_lines(out + "/metrics.jsonl"), metrics_lines(path("ref/metrics.jsonl"))) << point;
  }
  // --eval-fraction: evaluation on held-out documents of the same file (their split: train_data_test.cpp).
  const Out held = fme("train --model " + model + " --dataset " + docs + " --eval-fraction 0.3 --steps 1 --seq-len 64 --quiet --out " +
                       path("held"));
  ASSERT_EQ(held.code, 0) << held.err;
  EXPECT_GT(Json::parse(held.out).at("eval").at("eval_tokens").get<int64_t>(), 0);
  EXPECT_LT(Json::parse(held.out).at("eval").at("eval_tokens").get<int64_t>(), Json::parse(ref.out).at("eval").at("eval_tokens").get<int64_t>());
  const Json index = Json::parse(read_file(path("ref/checkpoints/step-00000002/index.json")));
  EXPECT_EQ(index.at("data").at("kind"), "stream");
  EXPECT_EQ(index.at("data").at("rows_done").get<int64_t>(), 2 * 2 * 2);
}

// LoRA rules train only the adapters; final/ keeps the base weights and holds the adapters in PEFT's layout
// (as --save-adapters writes them), or with --merge-adapters the base weights plus B A alpha/r and no adapters.
TEST_F(Train, LoraAdaptersSaveAsPeftAndMergeIntoTheBaseWeights) {
  const std::string model = shared("models/qwen2-tiny");
  { std::ofstream(path("lora.plan")) << "plan adapters\n*.self_attn.q_proj lora(r=4, alpha=8)\n*.self_attn.v_proj lora(r=2, alpha=8)\n"
                                        "*.layers.2.self_attn.k_proj lora(r=4, alpha=16)\n"; }
  const std::string args = "train --model " + model + " --inputs " + model + "/train.safetensors --steps 3 --lr 5e-2 --dropout 0" +
                           " --precision fp32 --quiet --plan " + path("lora.plan");
  ASSERT_EQ(fme(args + " --out " + path("a") + " --save-adapters " + path("adapters")).code, 0);
  ASSERT_EQ(fme(args + " --out " + path("b") + " --merge-adapters").code, 0);
  const auto base = read_safetensors(model + "/model.safetensors");
  const auto kept = read_safetensors(path("a/final/model.safetensors"));
  ASSERT_EQ(kept.size(), base.size()) << "final/model.safetensors holds the HF weights only";
  for (const auto& [k, t] : base) EXPECT_TRUE(at::equal(kept.at(k), t)) << k << ": only the adapters train";
  EXPECT_EQ(read_file(path("a/final/adapter_model.safetensors")), read_file(path("adapters/adapter_model.safetensors")));

  const Json cfg = Json::parse(read_file(path("adapters/adapter_config.json")));
  EXPECT_EQ(cfg.at("peft_type"), "LORA");
  EXPECT_EQ(cfg.at("task_type"), "CAUSAL_LM");
  EXPECT_EQ(cfg.at("target_modules"), Json({"k_proj", "q_proj", "v_proj"}));
  const auto adapters = read_safetensors(path("adapters/adapter_model.safetensors"));
  EXPECT_EQ(adapters.size(), 2u * 7);
  const Json rank = cfg.at("rank_pattern"), alpha = cfg.at("alpha_pattern");
  auto r_of = [&](const std::string& m) { return rank.contains(m) ? rank.at(m).get<int64_t>() : cfg.at("r").get<int64_t>(); };
  auto alpha_of = [&](const std::string& m) { return alpha.contains(m) ? alpha.at(m).get<double>() : cfg.at("lora_alpha").get<double>(); };

  const auto merged = read_safetensors(path("b/final/model.safetensors"));
  ASSERT_EQ(merged.size(), base.size());
  EXPECT_FALSE(fs::exists(path("b/final/adapter_config.json")));
  int64_t checked = 0;
  for (const auto& [k, w] : base) {
    const std::string m = k.substr(0, k.size() - std::string(".weight").size());
    auto a = adapters.find("base_model.model." + m + ".lora_A.weight");
    if (k.size() < 7 || k.compare(k.size() - 7, 7, ".weight") != 0 || a == adapters.end()) {
      EXPECT_TRUE(at::equal(merged.at(k), w)) << k;
      continue;
    }
    const at::Tensor A = a->second, B = adapters.at("base_model.model." + m + ".lora_B.weight");
    const int64_t r = r_of(m);
    EXPECT_EQ(A.sizes(), (std::vector<int64_t>{r, w.size(1)})) << m;
    EXPECT_EQ(B.sizes(), (std::vector<int64_t>{w.size(0), r})) << m;
    EXPECT_GT(B.abs().max().item<double>(), 0) << m << ": B trained away from its zero start";
    EXPECT_EQ(alpha_of(m), m.find("layers.2.self_attn.k_proj") != std::string::npos ? 16.0 : 8.0) << m;
    const at::Tensor want = w + at::matmul(B, A) * (alpha_of(m) / static_cast<double>(r));
    EXPECT_LE((merged.at(k) - want).abs().max().item<double>(), 1e-6) << m;
    ++checked;
  }
  EXPECT_EQ(checked, 7);
  EXPECT_NO_THROW(load_model(path("b/final"), at::kFloat));

  const Out r = fme("train --model " + model + " --inputs " + model + "/train.safetensors --quiet --out " + path("c") + " --merge-adapters");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--merge-adapters: the model has no LoRA adapters"), std::string::npos) << r.err;
}

// Data parallel: dp=2 (each rank half of every step's rows, gradients summed over the ranks) ends with the
// weights of one process accumulating 2 micro-batches, after 3 steps, for BERT and Qwen2, on a fixed batch and
// on a streamed dataset. Rank 0 alone writes the run; its metrics equal the single process's.
TEST_F(Train, DataParallelTwoRanksEqualOneProcessAccumulatingTwo) {
  auto world_run = [&](int world, const std::string& args) {
    const std::string log = path("rank");
    const int code = dist::run_local_world(world, "timeout 300 " + kFme + " " + args + " --threads 1", log, false);
    EXPECT_EQ(code, 0) << read_file(log + "0.err") << (world > 1 ? read_file(log + "1.err") : "");
    return read_file(log + "0");
  };
  const std::string qwen = shared("models/qwen2-tiny");
  const std::string docs = write_text_docs(path("docs.jsonl"), 16, 300);
  ASSERT_EQ(fme("init --preset qwen2-tiny --out " + path("qwen-init") + " --seed 2").code, 0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bert", "train --model " + trained_model("bert-tiny") + " --inputs " + shared("models/bert-tiny/train.safetensors") + " --micro-batch 2"},
      {"qwen2", "train --model " + qwen + " --inputs " + qwen + "/train.safetensors --micro-batch 2"},
      {"qwen2-stream", "train --model " + path("qwen-init") + " --dataset " + docs + " --seq-len 64 --micro-batch 2 --shuffle-buffer 4"},
  };
  for (const auto& [name, base] : cases) {
    SCOPED_TRACE(name);
    const std::string common = base + " --steps 3 --optimizer adamw --lr 1e-2 --clip-norm 1.0 --dropout 0 --precision fp32 --quiet";
    const std::string one = world_run(1, common + " --grad-accum 2 --out " + path(name + "-dp1"));
    const std::string two = world_run(2, common + " --mesh dp=2 --timeout 60 --out " + path(name + "-dp2"));
    ASSERT_FALSE(two.empty()) << "rank 0 prints the summary";
    EXPECT_EQ(Json::parse(one).at("tokens"), Json::parse(two).at("tokens"));
    const auto a = read_safetensors(path(name + "-dp1/final/model.safetensors"));
    const auto b = read_safetensors(path(name + "-dp2/final/model.safetensors"));
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [k, t] : a) EXPECT_LE((t - b.at(k)).abs().max().item<double>(), 1e-5) << k;
    const auto la = metrics_lines(path(name + "-dp1/metrics.jsonl")), lb = metrics_lines(path(name + "-dp2/metrics.jsonl"));
    ASSERT_EQ(la.size(), 3u);
    ASSERT_EQ(lb.size(), 3u);
    for (size_t i = 0; i < la.size(); ++i)
      EXPECT_NEAR(Json::parse(la[i]).at("loss").get<double>(), Json::parse(lb[i]).at("loss").get<double>(), 1e-5);
  }
}

// Tensor parallel: with the architecture's built-in plan (attention heads and MLP units split over tp, one
// all-reduce forward and one backward per block half), tp=2 computes one process's gradients, and after 3
// AdamW steps with clipping its weights, for BERT (MLM), Qwen2, Qwen3 (per-head q/k norms on split heads),
// GPT-2 (the fused c_attn) and Gemma 2; dp=2,tp=2 (4 processes) equals one process accumulating 2
// micro-batches on a streamed dataset, and LoRA adapters on split layers train as on one process. final/ is
// the whole model (gathered), --dump-grads the whole gradients.
TEST_F(Train, TensorParallelEqualsOneProcess) {
  auto world_run = [&](int world, const std::string& args) {
    const std::string log = path("rank");
    const int code = dist::run_local_world(world, "timeout 300 " + kFme + " " + args + " --threads 1", log, false);
    EXPECT_EQ(code, 0) << read_file(log + "0.err") << (world > 1 ? read_file(log + "1.err") : "");
    return read_file(log + "0");
  };
  auto fixed = [&](const std::string& name) {
    const std::string m = name == "bert-tiny" ? trained_model(name) : shared("models/" + name);
    return "train --model " + m + " --inputs " + shared("models/" + name + "/train.safetensors");
  };
  const std::string docs = write_text_docs(path("docs.jsonl"), 16, 300);
  ASSERT_EQ(fme("init --preset qwen2-tiny --out " + path("qwen-init") + " --seed 2").code, 0);
  { std::ofstream(path("lora.plan")) << "plan adapters\n*.self_attn.q_proj lora(r=4, alpha=8)\n*.self_attn.o_proj lora(r=2, alpha=8)\n"
                                        "*.mlp.down_proj lora(r=4, alpha=16)\n"; }
  struct Case {
    std::string name, args;
    int world;
    std::string mesh, one_process;  // the mesh, and what makes one process take the same step
  };
  const std::vector<Case> cases = {
      {"bert", fixed("bert-tiny"), 2, "tp=2", ""},
      {"qwen2", fixed("qwen2-tiny"), 2, "tp=2", ""},
      {"qwen3", fixed("qwen3-tiny"), 2, "tp=2", ""},
      {"gpt2", fixed("gpt2-tiny"), 2, "tp=2", ""},
      {"gemma2", fixed("gemma2-tiny"), 2, "tp=2", ""},
      {"qwen2-lora", fixed("qwen2-tiny") + " --plan builtin:qwen2-tp --plan " + path("lora.plan") + " --save-adapters " + path("adapters"),
       2, "tp=2", ""},
      {"qwen2-dp2-tp2", "train --model " + path("qwen-init") + " --dataset " + docs + " --seq-len 64 --micro-batch 2 --shuffle-buffer 4",
       4, "dp=2,tp=2", " --grad-accum 2"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const bool lora = c.name == "qwen2-lora";
    // lr 1e-3: AdamW moves a weight by lr * m / sqrt(v), so a gradient that the split GEMMs' other summation
    // order changes by a relative e (fp32 rounding: up to ~1e-3 on gradients near 1e-5) moves it by ~lr * e
    // (measured: <= 1e-6 here). LoRA's A has no gradient at step 1 (B starts at 0) and tiny ones after, which
    // AdamW would blow up to full-size steps of noise: plain SGD shows the adapters' own gradients instead.
    const std::string optim = lora ? " --optimizer sgd --lr 0.5" : " --optimizer adamw --lr 1e-3";
    const std::string common = c.args + " --steps 3" + optim + " --clip-norm 1.0 --dropout 0 --precision fp32 --quiet";
    const std::string one = world_run(1, common + c.one_process + " --dump-grads " + path(c.name + "-1.grads") + " --out " + path(c.name + "-1"));
    if (lora) fs::rename(path("adapters"), path("adapters-1"));
    const std::string many = world_run(c.world, common + " --mesh " + c.mesh + " --timeout 60 --checkpoint-every 3 --dump-grads " +
                                                    path(c.name + "-n.grads") + " --out " + path(c.name + "-n"));
    ASSERT_FALSE(many.empty()) << "rank 0 prints the summary";
    EXPECT_EQ(Json::parse(one).at("tokens"), Json::parse(many).at("tokens"));
    // The first step's gradients, whole: summation order aside, the same.
    const auto g1 = read_safetensors(path(c.name + "-1.grads")), gn = read_safetensors(path(c.name + "-n.grads"));
    ASSERT_EQ(g1.size(), gn.size());
    for (const auto& [k, g] : g1) {
      ASSERT_EQ(g.sizes(), gn.at(k).sizes()) << k;
      EXPECT_LE((g - gn.at(k)).abs().max().item<double>(), 3e-6 * std::max(1.0, g.abs().max().item<double>())) << k;
    }
    // The weights after 3 steps, where the first gradient is >= 1e-6 (below AdamW's eps an update turns
    // rounding noise into a full-size step; the HF golden's rule).
    auto compare_weights = [&](const std::string& a_file, const std::string& b_file, const std::string& grad_prefix) {
      const auto a = read_safetensors(a_file), b = read_safetensors(b_file);
      ASSERT_EQ(a.size(), b.size());
      for (const auto& [k, t] : a) {
        ASSERT_EQ(t.sizes(), b.at(k).sizes()) << k;
        auto g = g1.find("grad." + grad_prefix + k);
        const at::Tensor counted = g == g1.end() ? at::ones_like(t, at::kBool) : g->second.abs().ge(1e-6);
        EXPECT_LE(((t - b.at(k)).abs() * counted).max().item<double>(), 1e-5) << k;
      }
    };
    compare_weights(path(c.name + "-1/final/model.safetensors"), path(c.name + "-n/final/model.safetensors"), "");
    if (lora) compare_weights(path("adapters-1/adapter_model.safetensors"), path("adapters/adapter_model.safetensors"), "");
    const auto la = metrics_lines(path(c.name + "-1/metrics.jsonl")), ln = metrics_lines(path(c.name + "-n/metrics.jsonl"));
    ASSERT_EQ(la.size(), ln.size());
    for (size_t i = 0; i < la.size(); ++i) {
      EXPECT_NEAR(Json::parse(la[i]).at("loss").get<double>(), Json::parse(ln[i]).at("loss").get<double>(), 1e-5);
      EXPECT_NEAR(Json::parse(la[i]).at("grad_norm").get<double>(), Json::parse(ln[i]).at("grad_norm").get<double>(), 1e-5);
    }
    // Each tp rank of the dp=0 replica wrote its shards; the index names the mesh and every file's rank.
    const Json index = Json::parse(read_file(path(c.name + "-n/checkpoints/step-00000003/index.json")));
    EXPECT_EQ(index.at("mesh").at("tp"), 2);
    std::set<int> ranks;
    for (const auto& f : index.at("files")) ranks.insert(f.at("rank").get<int>());
    EXPECT_EQ(ranks, (std::set<int>{0, 1}));
    const auto shard = read_safetensors(path(c.name + "-n/checkpoints/step-00000003/model.rank-00001.safetensors"));
    const auto whole = read_safetensors(path(c.name + "-n/final/model.safetensors"));
    int64_t shard_elems = 0, whole_elems = 0;
    for (const auto& [k, t] : shard) shard_elems += t.numel();
    for (const auto& [k, t] : whole) whole_elems += t.numel();
    EXPECT_LT(shard_elems, whole_elems) << "a rank's checkpoint holds its shards, not the whole model";
  }
}

// A tensor-parallel run killed (kill -9, every rank at its third step) resumes from the per-rank checkpoint
// files and ends byte-identical to an uninterrupted run; a resume on another mesh is refused by name.
TEST_F(Train, TensorParallelRunResumesByteIdentical) {
  const std::string m = shared("models/qwen2-tiny");
  const std::string args = "train --model " + m + " --inputs " + m + "/train.safetensors --steps 4 --lr 1e-2 --warmup 1 --clip-norm 1.0" +
                           " --dropout 0 --precision fp32 --quiet --checkpoint-every 2 --mesh tp=2 --timeout 60 --threads 1";
  auto run = [&](const std::string& out, const std::string& env, const std::string& more = "") {
    return dist::run_local_world(2, env + "timeout 300 " + kFme + " " + args + more + " --out " + out, path("rank"), false);
  };
  ASSERT_EQ(run(path("whole"), ""), 0) << read_file(path("rank0.err"));
  EXPECT_NE(run(path("cut"), "FME_FAILPOINT=train.step@3 "), 0);
  EXPECT_FALSE(fs::exists(path("cut/final")));
  ASSERT_TRUE(fs::exists(path("cut/checkpoints/step-00000002/model.rank-00001.safetensors")));
  ASSERT_EQ(run(path("cut"), "", " --resume"), 0) << read_file(path("rank0.err")) << read_file(path("rank1.err"));
  EXPECT_EQ(read_file(path("cut/final/model.safetensors")), read_file(path("whole/final/model.safetensors")));
  EXPECT_EQ(metrics_lines(path("cut/metrics.jsonl")), metrics_lines(path("whole/metrics.jsonl")));

  const Out r = fme("train --model " + m + " --inputs " + m + "/train.safetensors --steps 4 --lr 1e-2 --warmup 1 --clip-norm 1.0" +
                    " --dropout 0 --precision fp32 --quiet --checkpoint-every 2 --resume --out " + path("cut"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("mesh: checkpoint {\"dp\":1,\"tp\":2}, now {\"dp\":1,\"tp\":1}"), std::string::npos) << r.err;
}

// A rank that dies mid-run (kill -9 at its second step) is a one-line error on the other, within --timeout,
// data parallel or tensor parallel (where the survivor waits inside a layer's collective, or in backward).
TEST_F(Train, APeerThatDiesIsAClearErrorNotAHang) {
  const std::string qwen = shared("models/qwen2-tiny");
  for (const std::string mesh : {"dp=2", "tp=2"}) {
    SCOPED_TRACE(mesh);
    const std::string log = path("rank-" + mesh);
    {  // rank 1 arms the failpoint (run_local_world quotes its command for bash -c: a script holds the logic)
      std::ofstream script(path("rank1_dies.sh"));
      script << "if [ \"$RANK\" = 1 ]; then export FME_FAILPOINT=train.step@2; fi\n"
             << "exec timeout 120 " << kFme << " train --model " << qwen << " --inputs " << qwen << "/train.safetensors --steps 5"
             << " --dropout 0 --quiet --mesh " << mesh << " --timeout 10 --threads 1 --out " << path("run-" + mesh) << "\n";
    }
    const std::string cmd = "sh " + path("rank1_dies.sh");
    const auto t0 = std::chrono::steady_clock::now();
    const int code = dist::run_local_world(2, cmd, log, false);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_NE(code, 0);
    const std::string err = read_file(log + "0.err");
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    const std::string who = mesh == "dp=2" ? "a data-parallel peer" : "a peer";
    EXPECT_NE(err.find("fme train: error: step 2: " + who + " of 2 failed or stopped answering"), std::string::npos) << err;
    EXPECT_NE(err.find("--resume continues from the last checkpoint"), std::string::npos) << err;
    EXPECT_LT(seconds, 100) << "the survivor must give up after --timeout, not hang";
  }
}

// A loss that overflows stops the run with one line naming the step, before the update; the checkpoint of
// the step before stays whole and resumable.
TEST_F(Train, ANonFiniteLossStopsTheRunAtItsStep) {
  const std::string model = shared("models/qwen2-tiny");
  const Out r = fme("train --model " + model + " --inputs " + model + "/train.safetensors --steps 6 --optimizer sgd --lr 1e30" +
                    " --precision fp32 --dropout 0 --quiet --checkpoint-every 1 --out " + path("run"));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  const size_t at = r.err.find("fme train: step ");
  ASSERT_NE(at, std::string::npos) << r.err;
  const int64_t bad_step = std::stoll(r.err.substr(at + 16));
  EXPECT_NE(r.err.find("the weights were not updated"), std::string::npos) << r.err;
  EXPECT_GE(bad_step, 2);
  EXPECT_EQ(metrics_lines(path("run/metrics.jsonl")).size(), static_cast<size_t>(bad_step - 1));
  const Json index = Json::parse(read_file(path("run/checkpoints/step-" + std::string(8 - std::to_string(bad_step - 1).size(), '0') +
                                                std::to_string(bad_step - 1) + "/index.json")));
  EXPECT_EQ(index.at("step").get<int64_t>(), bad_step - 1);
  EXPECT_FALSE(fs::exists(path("run/final")));
}

}  // namespace
}  // namespace fme

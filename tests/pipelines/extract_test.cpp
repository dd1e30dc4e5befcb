// `fme extract` end to end: activations equal an unpadded forward pass of each sample, exactly-once resume
// after kill -9 at several points (byte-identical shards), refusal of unsafe restarts, and the numpy reader.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "../models/test_util.h"
#include "dist/launch_env.h"
#include "models/init.h"
#include "models/loader.h"
#include "models/model_config.h"
#include "models/tensor_io.h"
#include "formats/safetensors.h"
#include "pipelines/model_dir.h"
#include "tokenizer/tokenizer.h"
#include "util/compress.h"
#include "util/cpu_features.h"
#include "util/file.h"
#include "util/json.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

using test::kFme;
using test::shared;

pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stdout);
    (void)f;
    f = std::freopen((log + ".err").c_str(), "w", stderr);
    std::vector<char*> argv{const_cast<char*>(kFme.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(kFme.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

int wait_code(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run(const std::vector<std::string>& args, std::string* err = nullptr) {
  const std::string log = (fs::temp_directory_path() / ("fme-x-" + std::to_string(getpid()) + ".log")).string();
  int code = wait_code(spawn(args, log));
  if (err) *err = read_file(log + ".err");
  return code;
}

class Extract : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("fme-extract-" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    ASSERT_EQ(run({"init", "--preset", "qwen2-tiny", "--out", (root_ / "model").string(), "--seed", "1"}), 0);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  static std::string model() { return (root_ / "model").string(); }
  static std::string path(const std::string& n) { return (root_ / n).string(); }
  static fs::path root_;
};
fs::path Extract::root_;

// The files of a run that must be identical between runs: shards, samples.jsonl, and the manifest's shard list.
std::map<std::string, std::string> run_files(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n == "manifest.json") {
      Json m = read_json_file(e.path().string());
      out[n] = m["shards"].dump() + m["totals"].dump() + m["complete"].dump() + m["stats"].dump();
    } else {
      out[n] = read_file(e.path().string());
    }
  }
  return out;
}

TEST_F(Extract, ActivationsEqualAnUnpaddedForwardOfEachSampleAndPaddingIsNeverStored) {
  const std::string texts = path("texts.jsonl");
  write_file_atomic(texts,
                    "{\"text\": \"Short one.\"}\n\n{\"text\": \"A somewhat longer document, so that batches need padding to "
                    "line up with each other.\"}\n{\"text\": \"Middle-sized text here.\"}\n");
  const std::string out = path("acts");
  ASSERT_EQ(run({"extract", "--model", model(), "--dataset", texts, "--out", out, "--dtype", "fp32", "--out-dtype", "fp32",
                 "--layers", "1,3", "--hooks", "blocks.1.attn.hook_z,blocks.{0..2}.mlp.hook_post", "--quiet"}),
            0);
  auto model_ = load_model(model(), at::kFloat);
  Tokenizer tok = Tokenizer::from_file(model());
  Json m = read_json_file(out + "/manifest.json");
  ASSERT_EQ(m["complete"], true);
  ASSERT_EQ(m["shards"].size(), 1u);
  auto shard = read_safetensors(out + "/" + m["shards"][0]["file"].get<std::string>());
  at::Tensor offsets = shard.at("sample_offsets"), index = shard.at("sample_index");
  EXPECT_EQ(index.sizes(), (at::IntArrayRef{3}));
  EXPECT_EQ(shard.count("blocks.0.hook_resid_post"), 0u);
  const std::vector<std::string> stored{"blocks.0.mlp.hook_post", "blocks.1.attn.hook_z", "blocks.1.mlp.hook_post",
                                        "blocks.1.hook_resid_post", "blocks.2.mlp.hook_post", "blocks.3.hook_resid_post"};
  // The manifest lists the points in forward order, with each row's shape and the storage dtype.
  ASSERT_EQ(m["hooks"].size(), stored.size()) << m["hooks"];
  EXPECT_EQ(m["hooks"][1]["name"], "blocks.1.attn.hook_z");
  EXPECT_EQ(m["hooks"][1]["row_shape"], Json::parse("[4, 8]"));
  EXPECT_EQ(m["hooks"][0]["row_shape"], Json::parse("[96]"));
  EXPECT_EQ(m["hooks"][0]["dtype"], "F32");
  EXPECT_EQ(m["version"], 2);
  std::ifstream in(texts);
  std::vector<std::string> docs;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) docs.push_back(Json::parse(line)["text"]);
  for (int64_t j = 0; j < 3; ++j) {
    std::vector<int32_t> ids = tok.encode(docs[index[j].item<int64_t>()]);
    const int64_t a = offsets[j].item<int64_t>(), b = offsets[j + 1].item<int64_t>();
    ASSERT_EQ(b - a, static_cast<int64_t>(ids.size())) << "sample " << j << " must store exactly its real tokens";
    at::Tensor want_ids = at::tensor(std::vector<int64_t>(ids.begin(), ids.end())).view({1, -1});
    EXPECT_TRUE(at::equal(shard.at("token_ids").slice(0, a, b).to(at::kLong), want_ids[0]));
    auto ref = test::capture_points(*model_, Batch{want_ids, at::ones_like(want_ids), {}}, stored);
    for (const auto& name : stored) {
      ASSERT_EQ(shard.at(name).size(0), offsets[3].item<int64_t>()) << name;
      double err = (shard.at(name).slice(0, a, b) - ref.at(name)[0]).abs().max().item<double>();
      EXPECT_LE(err, 1e-5) << name << " sample " << j;
    }
  }
  // samples.jsonl has one line per sample, with its source line (blank line 2 skipped in the numbering).
  std::ifstream sj(out + "/samples.jsonl");
  std::vector<Json> recs;
  for (std::string line; std::getline(sj, line);) recs.push_back(Json::parse(line));
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[1]["source"]["line"], 3);
}

TEST_F(Extract, KilledRunsResumeToByteIdenticalOutput) {
  std::vector<std::string> args{"extract",        "--model",         model(),  "--dataset", shared("arc-agi/training"),
                                "--max-samples",  "24",              "--augment", "2",      "--shard-size",
                                "250000",         "--bucket-window", "6",      "--layers", "0,2", "--quiet",
                                // Explicit: auto may resolve differently in two fresh runs where bf16 and fp32
                                // probe alike (--resume itself keeps the run's dtype).
                                "--dtype",        "fp32"};
  auto with_out = [&](const std::string& out, bool resume) {
    auto a = args;
    a.push_back("--out");
    a.push_back(out);
    if (resume) a.push_back("--resume");
    return a;
  };
  const std::string ref = path("ref");
  ASSERT_EQ(run(with_out(ref, false)), 0);
  auto want = run_files(ref);
  ASSERT_GE(want.size(), 6u) << "expected several shards";

  int killed_mid_run = 0;
  for (int delay_ms : {150, 400, 700, 1000, 1300, 1700}) {
    const std::string out = path("kill-" + std::to_string(delay_ms));
    pid_t pid = spawn(with_out(out, false), out + ".log");
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    kill(pid, SIGKILL);
    if (wait_code(pid) == 128 + SIGKILL) ++killed_mid_run;
    // Kill the resumed run once more, then finish it.
    pid = spawn(with_out(out, true), out + ".log2");
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms / 2));
    kill(pid, SIGKILL);
    wait_code(pid);
    std::string err;
    ASSERT_EQ(run(with_out(out, true), &err), 0) << "delay " << delay_ms << ": " << err;
    auto got = run_files(out);
    EXPECT_EQ(got.size(), want.size()) << "delay " << delay_ms;
    for (const auto& [name, bytes] : want) EXPECT_TRUE(got[name] == bytes) << name << " differs after kill at " << delay_ms << " ms";
  }
  EXPECT_GE(killed_mid_run, 2) << "the kills should land while the run is going";
}

// Every file under `dir` (recursively) but the manifests, by relative path; plus what the top manifest says.
std::map<std::string, std::string> tree_files(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = fs::path(e.path()).lexically_relative(dir).string();
    if (e.path().filename() == "manifest.json") continue;
    out[rel] = read_file(e.path().string());
  }
  Json m = read_json_file(dir + "/manifest.json");
  for (auto& s : m["shards"]) s.erase("rank");  // who computed a unit may differ; nothing else may
  out["manifest.json"] = m["shards"].dump() + m["totals"].dump() + m["complete"].dump() + m["stats"].dump() + m["units"].dump();
  return out;
}

// Each point's rows of every shard a manifest lists, in order, concatenated (and the token ids).
std::map<std::string, at::Tensor> all_rows(const std::string& dir) {
  std::map<std::string, std::vector<at::Tensor>> parts;
  const Json manifest = read_json_file(dir + "/manifest.json");
  for (const auto& s : manifest.at("shards"))
    for (const auto& [name, t] : read_safetensors(dir + "/" + s.at("file").get<std::string>()))
      if (name.rfind("blocks.", 0) == 0 || name == "token_ids") parts[name].push_back(t);
  std::map<std::string, at::Tensor> out;
  for (auto& [name, ts] : parts) out[name] = at::cat(ts);
  return out;
}

// --unit-samples N cuts a run into work units (a directory each, one manifest over them): with bucket windows
// that divide N, every sample's rows equal those of the same run in one directory; killed at a shard commit
// inside a unit or between units, --resume ends with the files of an uninterrupted run.
TEST_F(Extract, WorkUnitRunsEqualThePlainRunAndResumeByteIdentical) {
  const std::vector<std::string> args{"extract", "--model", model(), "--dataset", shared("arc-agi/training"), "--max-samples", "14",
                                      "--shard-size", "250000", "--bucket-window", "3", "--layers", "0,2", "--quiet", "--dtype", "fp32"};
  auto with = [&](std::vector<std::string> more) {
    auto a = args;
    a.insert(a.end(), more.begin(), more.end());
    return a;
  };
  std::string err;
  ASSERT_EQ(run(with({"--out", path("plain")}), &err), 0) << err;
  ASSERT_EQ(run(with({"--out", path("units"), "--unit-samples", "6"}), &err), 0) << err;
  const Json m = read_json_file(path("units/manifest.json"));
  EXPECT_EQ(m.at("units"), Json::parse(R"({"samples": 6, "count": 3, "prefix": 3, "complete": [0, 1, 2]})"));
  EXPECT_TRUE(m.at("complete").get<bool>());
  EXPECT_EQ(m.at("next_sample"), 14);
  const Json plain = read_json_file(path("plain/manifest.json"));
  for (const char* k : {"samples", "stored_samples", "tokens", "truncated", "skipped"})  // shards end at unit ends too
    EXPECT_EQ(m.at("totals").at(k), plain.at("totals").at(k)) << k;
  for (const auto& [point, st] : plain.at("stats").items()) {
    EXPECT_EQ(m.at("stats").at(point).at("rows"), st.at("rows"));
    EXPECT_NEAR(m.at("stats").at(point).at("sum_sq_norm").get<double>(), st.at("sum_sq_norm").get<double>(),
                1e-9 * st.at("sum_sq_norm").get<double>());
  }
  EXPECT_EQ(read_file(path("units/samples.jsonl")), read_file(path("plain/samples.jsonl")));
  const auto a = all_rows(path("plain")), b = all_rows(path("units"));
  ASSERT_EQ(a.size(), 3u);
  for (const auto& [name, t] : a) EXPECT_TRUE(at::equal(t, b.at(name))) << name;

  const auto want = tree_files(path("units"));
  for (const std::string point : {"extract.shard.committed@2", "extract.shard.committed@5", "extract.unit.committed@1",
                                  "extract.unit.committed@2"}) {
    SCOPED_TRACE(point);
    const std::string out = path("cut-" + point.substr(point.find('@') + 1) + point.substr(8, 4));
    setenv("FME_FAILPOINT", point.c_str(), 1);
    const int code = run(with({"--out", out, "--unit-samples", "6"}));
    unsetenv("FME_FAILPOINT");
    EXPECT_EQ(code, 128 + SIGKILL);
    ASSERT_EQ(run(with({"--out", out, "--unit-samples", "6", "--resume"}), &err), 0) << err;
    const auto got = tree_files(out);
    EXPECT_EQ(got.size(), want.size());
    for (const auto& [name, bytes] : want) EXPECT_TRUE(got.count(name) && got.at(name) == bytes) << name;
  }
  // The unit size is part of the run: another one is refused, naming it.
  EXPECT_EQ(run(with({"--out", path("units"), "--unit-samples", "5", "--resume"}), &err), 1);
  EXPECT_NE(err.find("settings.unit_samples: 6 -> 5"), std::string::npos) << err;
}

// Ranks share one run through work units: 3 ranks (torchrun-style env) write what 1 process writes, byte
// for byte, in one run directory with one manifest naming each shard's unit and rank. Two ranks killed at
// different points while the third goes on: their units are taken over when their heartbeats stop, in the
// same launch. All three killed: the same command on 2 ranks with --resume completes exactly the rest.
TEST_F(Extract, RanksClaimWorkUnitsAndResumeOnAnyWorldSize) {
  const std::string cmd_base = kFme + " extract --model " + model() + " --dataset " + shared("arc-agi/training") +
                               " --max-samples 14 --shard-size 250000 --bucket-window 3 --layers 0,2 --quiet --dtype fp32" +
                               " --unit-samples 3 --threads 1 --timeout 60";
  std::string err;
  ASSERT_EQ(run({"extract", "--model", model(), "--dataset", shared("arc-agi/training"), "--max-samples", "14", "--shard-size",
                 "250000", "--bucket-window", "3", "--layers", "0,2", "--quiet", "--dtype", "fp32", "--unit-samples", "3",
                 "--threads", "1", "--out", path("one")},
                &err),
            0)
      << err;
  const auto want = tree_files(path("one"));
  // `kills`: a failpoint per rank ("" for none), set by a script that reads RANK.
  auto launch = [&](int world, const std::string& out, const std::vector<std::string>& kills, const std::string& more) {
    std::ofstream script(path("launch.sh"));
    for (size_t r = 0; r < kills.size(); ++r)
      if (!kills[r].empty()) script << "if [ \"$RANK\" = " << r << " ]; then export FME_FAILPOINT=" << kills[r] << "; fi\n";
    script << "exec timeout 300 " << cmd_base << more << " --out " << out << "\n";
    script.close();
    return dist::run_local_world(world, "sh " + path("launch.sh"), path("rank"), false);
  };
  auto expect_same = [&](const std::string& out) {
    const auto got = tree_files(out);
    EXPECT_EQ(got.size(), want.size());
    for (const auto& [name, bytes] : want) EXPECT_TRUE(got.count(name) && got.at(name) == bytes) << name;
  };

  ASSERT_EQ(launch(3, path("three"), {}, ""), 0) << read_file(path("rank0.err")) << read_file(path("rank1.err"));
  expect_same(path("three"));
  const Json m = read_json_file(path("three/manifest.json"));
  std::set<int> ranks;
  for (const auto& s : m.at("shards")) {
    EXPECT_EQ(s.at("file").get<std::string>().rfind("units/unit-00000" + std::to_string(s.at("unit").get<int>()) + "/", 0), 0u);
    ranks.insert(s.at("rank").get<int>());
  }
  EXPECT_GE(ranks.size(), 2u) << "the units were shared between ranks";
  EXPECT_EQ(Json::parse(read_file(path("rank0"))).at("samples"), 14) << "rank 0 reports the whole run";

  // Ranks 1 and 2 die mid-unit; rank 0 takes their units over once their heartbeats have stopped for 2 s.
  EXPECT_NE(launch(3, path("taken"), {"", "extract.shard.committed@1", "extract.shard.committed@2"}, " --unit-lease-s 2"), 0);
  EXPECT_EQ(read_file(path("rank0.err")), "");
  expect_same(path("taken"));

  // Every rank dies (rank 0 after its first unit: the others lose the store), then 2 ranks resume.
  EXPECT_NE(launch(3, path("resumed"), {"extract.unit.committed@1", "extract.shard.committed@1", "extract.shard.committed@3"}, ""), 0);
  EXPECT_FALSE(read_json_file(path("resumed/manifest.json")).at("complete").get<bool>());
  ASSERT_EQ(launch(2, path("resumed"), {}, " --resume"), 0) << read_file(path("rank0.err")) << read_file(path("rank1.err"));
  expect_same(path("resumed"));

  // Rank 1 stalls (SIGSTOP) after its first shard and goes on (SIGCONT) once rank 0 has taken its unit over:
  // at its next commit it finds the unit is no longer its own and leaves it, writing nothing more there.
  {
    std::ofstream script(path("stall.sh"));
    script << "cmd='" << cmd_base << " --unit-lease-s 2 --out " << path("stalled") << "'\n"
           << "if [ \"$RANK\" = 1 ]; then\n"
           << "  FME_FAILPOINT=extract.shard.committed@1:stop $cmd & pid=$!\n"
           << "  while ! grep -q '^[0-9]* ([^)]*) T' /proc/$pid/stat 2>/dev/null; do sleep 0.05; done\n"
           << "  sleep 4; kill -CONT $pid; wait $pid\n"
           << "else exec $cmd; fi\n";
  }
  ASSERT_EQ(dist::run_local_world(2, "timeout 120 sh " + path("stall.sh"), path("rank"), false), 0)
      << read_file(path("rank0.err")) << read_file(path("rank1.err"));
  const std::string said = read_file(path("rank1.err"));
  const size_t at = said.find("fme extract: rank 1: unit ");
  ASSERT_NE(at, std::string::npos) << said;
  const int lost = std::atoi(said.c_str() + at + 26);
  EXPECT_NE(said.find(" was taken over by another rank while this one stalled for longer than --unit-lease-s", at), std::string::npos) << said;
  expect_same(path("stalled"));
  for (const auto& s : read_json_file(path("stalled/manifest.json")).at("shards"))
    if (s.at("unit") == lost) EXPECT_EQ(s.at("rank"), 0) << "rank 0 wrote the unit it took over";

  // Ranks started with different settings: every rank says so, none hangs.
  std::ofstream(path("mixed.sh")) << "if [ \"$RANK\" = 1 ]; then extra='--out-dtype fp32'; fi\n"
                                  << "exec timeout 120 " << cmd_base << " $extra --out " << path("mixed") << "\n";
  EXPECT_NE(dist::run_local_world(2, "sh " + path("mixed.sh"), path("rank"), false), 0);
  for (const char* r : {"rank0.err", "rank1.err"})
    EXPECT_NE(read_file(path(r)).find("was started with other settings than rank"), std::string::npos) << read_file(path(r));
}

// Across ranks rank 0 reports the run: its log lines count what every rank's forward pass has computed, before
// any of it is committed (units of 20 samples in one shard each: nothing commits until a unit ends).
TEST_F(Extract, RankZerosProgressCountsEveryRanksWork) {
  std::ofstream(path("progress.sh")) << "FME_PROGRESS_INTERVAL=0.05 exec timeout 120 " << kFme << " extract --model " << model()
                                     << " --dataset " << shared("arc-agi/training") << " --max-samples 40 --batch-size 1"
                                     << " --layers 0,2 --dtype fp32 --unit-samples 20 --threads 1 --timeout 60 --out "
                                     << path("progress") << "\n";
  ASSERT_EQ(dist::run_local_world(2, "sh " + path("progress.sh"), path("rank"), false), 0) << read_file(path("rank0.err"));
  const std::string log = read_file(path("rank0.err"));
  bool beyond_own_unit = false;  // a line with more samples than rank 0's unit holds, and no shard yet
  int64_t last = 0;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    long long samples = 0, of = 0, shards = -1;
    const size_t at = line.find(" samples (");
    if (line.rfind("extract: ", 0) != 0 || at == std::string::npos) continue;
    ASSERT_EQ(std::sscanf(line.c_str() + line.rfind(' ', at - 1) + 1, "%lld/%lld", &samples, &of), 2) << line;
    const size_t sh = line.find(" shards,");
    ASSERT_NE(sh, std::string::npos) << line;
    shards = std::atoll(line.c_str() + line.rfind(' ', sh - 1) + 1);
    EXPECT_EQ(of, 40);
    EXPECT_GE(samples, last) << line;
    last = samples;
    beyond_own_unit = beyond_own_unit || (samples > 20 && shards == 0);
  }
  EXPECT_TRUE(beyond_own_unit) << log;
  EXPECT_NE(log.find("extract: done, 40/40 samples (100.0%)"), std::string::npos) << log;
  const std::string other = "\n" + read_file(path("rank1.err"));
  EXPECT_EQ(other.find("\nextract: "), std::string::npos) << "only rank 0 reports: " << other;
}

// A rank whose rank 0 never comes: one line naming where it looked, within --timeout, and nothing written (no
// library log lines either).
TEST_F(Extract, ARankThatCannotReachTheStoreSaysSoInOneLine) {
  const std::string cmd = "MASTER_ADDR=127.0.0.1 MASTER_PORT=1 WORLD_SIZE=2 RANK=1 LOCAL_RANK=1 timeout 60 " + kFme +
                          " extract --model " + model() + " --dataset " + shared("arc-agi/training") + " --max-samples 2" +
                          " --dtype fp32 --quiet --timeout 2 --out " + path("no-store") + " 2> " + path("no-store.err");
  const auto t0 = std::chrono::steady_clock::now();
  const int status = std::system(cmd.c_str());
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  const std::string err = read_file(path("no-store.err"));
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(err.rfind("fme extract: error: rendezvous: rank 1 could not reach rank 0 at 127.0.0.1:1 within 2 s", 0), 0u) << err;
  EXPECT_FALSE(fs::exists(path("no-store")));
}

// --exclude-special-tokens / --exclude-bos leave rows out; the stored rows keep their ids and positions, and
// the manifest's running statistics equal fp64 sums over exactly the stored rows.
TEST_F(Extract, ExcludedRowsPositionsAndRunningStatistics) {
  // The model with a declared BOS (<|endoftext|>, a special token of the Qwen tokenizer).
  const std::string dir = path("model-bos");
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(model())) fs::copy(e.path(), fs::path(dir) / e.path().filename());
  Json config = read_json_file(dir + "/config.json");
  config["bos_token_id"] = 151643;
  write_file_atomic(dir + "/config.json", config.dump(2));
  const std::string data = path("bos.jsonl");
  const std::vector<std::vector<int64_t>> docs{{151643, 9707, 1879, 151644, 872, 198}, {9707, 151643, 11, 151645}, {151643}};
  std::string text;
  for (const auto& d : docs) text += Json{{"input_ids", d}}.dump() + "\n";
  write_file_atomic(data, text);
  auto extract = [&](const std::string& out, std::vector<std::string> flags) {
    std::vector<std::string> args{"extract", "--model", dir, "--dataset", data, "--out", out, "--dtype", "fp32",
                                  "--out-dtype", "fp32", "--hooks", "blocks.1.hook_resid_post,blocks.0.attn.hook_z", "--quiet"};
    args.insert(args.end(), flags.begin(), flags.end());
    std::string err;
    EXPECT_EQ(run(args, &err), 0) << err;
    return read_json_file(out + "/manifest.json");
  };
  const std::set<int64_t> special{151643, 151644, 151645};
  struct Want {
    std::vector<std::string> flags;
    std::function<bool(int64_t id, int64_t pos)> keep;
  };
  const std::vector<Want> cases{
      {{}, [](int64_t, int64_t) { return true; }},
      {{"--exclude-bos"}, [](int64_t id, int64_t pos) { return !(pos == 0 && id == 151643); }},
      {{"--exclude-special-tokens"}, [&](int64_t id, int64_t) { return !special.count(id); }},
  };
  auto model_ = load_model(dir, at::kFloat);
  for (size_t c = 0; c < cases.size(); ++c) {
    const std::string out = path("excl-" + std::to_string(c));
    Json m = extract(out, cases[c].flags);
    auto shard = read_safetensors(out + "/" + m["shards"][0]["file"].get<std::string>());
    const at::Tensor ids = shard.at("token_ids"), pos = shard.at("token_positions"), off = shard.at("sample_offsets");
    const at::Tensor index = shard.at("sample_index");
    int64_t excluded = 0;
    for (int64_t j = 0; j < index.size(0); ++j) {
      const auto& doc = docs[index[j].item<int64_t>()];
      std::vector<int64_t> want_pos;
      for (size_t t = 0; t < doc.size(); ++t)
        if (cases[c].keep(doc[t], static_cast<int64_t>(t))) want_pos.push_back(static_cast<int64_t>(t));
      excluded += static_cast<int64_t>(doc.size() - want_pos.size());
      const int64_t a = off[j].item<int64_t>(), b = off[j + 1].item<int64_t>();
      ASSERT_EQ(b - a, static_cast<int64_t>(want_pos.size())) << "case " << c << " sample " << j;
      // The stored rows are the forward's rows at those positions of the whole sample.
      at::Tensor full = at::tensor(doc, at::kLong).view({1, -1});
      auto ref = test::capture_points(*model_, Batch{full, at::ones_like(full), {}},
                                      {"blocks.1.hook_resid_post", "blocks.0.attn.hook_z"});
      for (size_t k = 0; k < want_pos.size(); ++k) {
        EXPECT_EQ(pos[a + k].item<int64_t>(), want_pos[k]);
        EXPECT_EQ(ids[a + k].item<int64_t>(), doc[want_pos[k]]);
        for (const char* name : {"blocks.1.hook_resid_post", "blocks.0.attn.hook_z"})
          EXPECT_LE((shard.at(name)[a + k] - ref.at(name)[0][want_pos[k]]).abs().max().item<double>(), 1e-5) << name;
      }
    }
    EXPECT_EQ(m["totals"]["excluded_tokens"], excluded) << "case " << c;
    EXPECT_EQ(m["totals"]["tokens"], ids.size(0));
    // Statistics over the stored rows, recomputed here in fp64.
    for (const char* name : {"blocks.1.hook_resid_post", "blocks.0.attn.hook_z"}) {
      const at::Tensor x = shard.at(name).to(at::kDouble).flatten(1);  // [N, row numel]
      const Json& st = m["stats"][name];
      ASSERT_EQ(st["rows"], x.size(0)) << name;
      const std::vector<double> mean = st["mean"];
      ASSERT_EQ(static_cast<int64_t>(mean.size()), x.size(1));
      const at::Tensor want_mean = x.mean(0);
      for (int64_t i = 0; i < x.size(1); ++i) EXPECT_NEAR(mean[i], want_mean[i].item<double>(), 1e-12) << name << " " << i;
      const double want_sq = x.mul(x).sum(1).mean().item<double>();
      EXPECT_NEAR(st["mean_sq_norm"].get<double>(), want_sq, 1e-12 * want_sq) << name;
    }
  }
  // What the flags need is checked before anything runs: a model without a BOS token.
  std::string err;
  EXPECT_EQ(run({"extract", "--model", model(), "--dataset", data, "--out", path("nobos"), "--exclude-bos", "--quiet"}, &err), 1);
  EXPECT_NE(err.find("--exclude-bos"), std::string::npos) << err;
  EXPECT_NE(err.find("bos_token_id"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(path("nobos")));
}

// A run of the previous format version (resid_post.{i} per layer) is refused on --resume, naming the version;
// a --hooks pattern that matches nothing is an error naming the valid points, before any output exists.
TEST_F(Extract, OldFormatRunsAndUnknownHookPointsAreClearErrors) {
  const std::string out = path("v1");
  std::vector<std::string> base{"extract", "--model", model(), "--dataset", shared("arc-agi/evaluation"), "--max-samples",
                                "1",       "--quiet", "--out", out, "--layers", "0"};
  ASSERT_EQ(run(base), 0);
  Json m = read_json_file(out + "/manifest.json");
  m["version"] = 1;
  write_file_atomic(out + "/manifest.json", m.dump(2));
  auto again = base;
  again.push_back("--resume");
  std::string err;
  EXPECT_EQ(run(again, &err), 1);
  EXPECT_NE(err.find("format version 1"), std::string::npos) << err;
  EXPECT_NE(err.find("resumes only version 2"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;

  const std::string none = path("nohook");
  EXPECT_EQ(run({"extract", "--model", model(), "--dataset", shared("arc-agi/evaluation"), "--max-samples", "1", "--quiet",
                 "--out", none, "--hooks", "blocks.{0..1}.hook_resid_post,blocks.0.hook_nope"},
                &err),
            1);
  EXPECT_NE(err.find("'blocks.0.hook_nope' matches no hook point"), std::string::npos) << err;
  EXPECT_NE(err.find("blocks.{0..3}.{hook_resid_pre,attn.hook_z,hook_attn_out"), std::string::npos) << err;
  EXPECT_NE(err.find("ln_final.hook_normalized"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(none));
}

TEST_F(Extract, RefusesUnsafeRestarts) {
  const std::string out = path("refuse");
  std::vector<std::string> base{"extract", "--model", model(), "--dataset", shared("arc-agi/evaluation"), "--max-samples",
                                "3",       "--quiet", "--out", out};
  ASSERT_EQ(run(base), 0);
  std::string err;
  EXPECT_EQ(run(base, &err), 1);
  EXPECT_NE(err.find("not empty"), std::string::npos) << err;
  auto changed = base;
  changed.insert(changed.end(), {"--resume", "--layers", "1"});
  EXPECT_EQ(run(changed, &err), 1);
  EXPECT_NE(err.find("different settings"), std::string::npos) << err;
  EXPECT_NE(err.find("settings.hooks"), std::string::npos) << err;
  auto same = base;
  same.push_back("--resume");
  EXPECT_EQ(run(same, &err), 0) << err;  // a finished run resumes to nothing
  // Killed before its first manifest landed: only a temp file is there, and --resume starts afresh.
  const std::string early = path("early");
  fs::create_directories(early);
  write_file_atomic(early + "/manifest.json.tmp.12345", "{\"trunc");
  auto resume_early = same;
  resume_early[resume_early.size() - 2] = early;  // --out value
  EXPECT_EQ(run(resume_early, &err), 0) << err;
  EXPECT_EQ(read_json_file(early + "/manifest.json")["complete"], true);
}

TEST_F(Extract, TruncationAndSkippingAreCountedAndMarked) {
  const std::string out = path("trunc");
  ASSERT_EQ(run({"extract", "--model", model(), "--dataset", shared("arc-agi/training"), "--max-samples", "6",
                 "--max-seq-len", "1000", "--skip-longer", "3000", "--quiet", "--out", out}),
            0);
  Json m = read_json_file(out + "/manifest.json");
  std::ifstream sj(out + "/samples.jsonl");
  int truncated = 0, skipped = 0, lines = 0;
  for (std::string line; std::getline(sj, line); ++lines) {
    Json r = Json::parse(line);
    if (r.contains("skipped")) {
      ++skipped;
      EXPECT_GT(r.value("original_tokens", 0), 3000) << line;  // skipped for being longer than --skip-longer
    } else {
      EXPECT_LE(r["tokens"].get<int>(), 1000);
      if (r["truncated"] == true) ++truncated;
    }
  }
  EXPECT_EQ(lines, 6);
  EXPECT_EQ(m["truncated"], truncated);
  EXPECT_EQ(m["skipped"], skipped);
  EXPECT_GT(truncated + skipped, 0) << "ARC prompts are longer than 1000 tokens";
  EXPECT_EQ(m["totals"]["stored_samples"].get<int>(), 6 - skipped);
}

// Runs fme with FME_CPU_DISABLE=`disable` (as on a CPU without those features).
int run_hiding(const std::string& disable, const std::vector<std::string>& args, std::string* err = nullptr) {
  ::setenv("FME_CPU_DISABLE", disable.c_str(), 1);
  const int code = run(args, err);
  ::unsetenv("FME_CPU_DISABLE");
  return code;
}

TEST_F(Extract, AutoDtypeFollowsTheCpuAndIsRecordedWithItsReason) {
  const std::vector<std::string> base{"extract", "--model", model(), "--dataset", shared("arc-agi/evaluation"),
                                      "--max-samples", "2", "--layers", "1"};
  // A CPU without native bf16: fp32 compute, said on stderr and in the manifest; output bf16 by default.
  const std::string out = path("auto-nobf16");
  auto args = base;
  args.insert(args.end(), {"--out", out});
  std::string err;
  ASSERT_EQ(run_hiding("avx512_bf16,amx,bf16", args, &err), 0) << err;
  EXPECT_NE(err.find("compute fp32"), std::string::npos) << err;
  EXPECT_NE(err.find("no native bf16"), std::string::npos) << err;
  EXPECT_EQ(err.find("warning"), std::string::npos) << err;
  Json m = read_json_file(out + "/manifest.json");
  EXPECT_EQ(m["dtype"], "fp32");
  EXPECT_EQ(m["out_dtype"], "bf16");
  EXPECT_EQ(m["weights_dtype"], "fp32");
  EXPECT_EQ(m["compute"]["requested"], "auto");
  EXPECT_EQ(m["compute"]["dtype"], "fp32");
  EXPECT_NE(m["compute"]["reason"].get<std::string>().find("no native bf16"), std::string::npos) << m["compute"];
  EXPECT_FALSE(m["compute"].contains("probe_gflops"));  // nothing to probe: bf16 cannot be fast here
  EXPECT_EQ(m["identity"]["settings"]["dtype"], "fp32");
  auto shard = SafetensorsFile::open(out + "/" + m["shards"][0]["file"].get<std::string>());
  EXPECT_EQ(shard->find("blocks.1.hook_resid_post")->dtype, DType::BF16);

  // This machine as it is: auto is recorded with what it resolved to, bf16 only where the CPU has it.
  const std::string here = path("auto-here");
  args = base;
  args.insert(args.end(), {"--out", here, "--quiet"});
  ASSERT_EQ(run(args, &err), 0) << err;
  m = read_json_file(here + "/manifest.json");
  EXPECT_EQ(m["compute"]["requested"], "auto");
  const std::string d = m["dtype"];
  EXPECT_TRUE(d == "fp32" || d == "bf16") << d;
  if (!cpu_features().native_bf16()) {
    EXPECT_EQ(d, "fp32");
  }
  if (d == "bf16") {
    EXPECT_TRUE(m["compute"].contains("probe_gflops")) << m["compute"];
  }
}

TEST_F(Extract, ExplicitSlowBf16WarnsAndResumeKeepsTheRunsDtype) {
  const std::string out = path("bf16-slow");
  std::vector<std::string> args{"extract", "--model", model(), "--dataset", shared("arc-agi/evaluation"),
                                "--max-samples", "2", "--layers", "0", "--quiet", "--out", out};
  auto bf16 = args;
  bf16.insert(bf16.end(), {"--dtype", "bf16"});
  std::string err;
  ASSERT_EQ(run_hiding("bf16", bf16, &err), 0) << err;
  EXPECT_NE(err.find("warning"), std::string::npos) << err;
  EXPECT_NE(err.find("--weights-dtype bf16"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(read_json_file(out + "/manifest.json")["dtype"], "bf16");
  // --resume without --dtype: auto keeps bf16, the run's dtype (auto alone would pick fp32 on this "CPU").
  auto resume = args;
  resume.push_back("--resume");
  EXPECT_EQ(run_hiding("bf16", resume, &err), 0) << err;
  // An explicit different dtype is refused, naming it.
  resume.insert(resume.end(), {"--dtype", "fp32"});
  EXPECT_EQ(run_hiding("bf16", resume, &err), 1);
  EXPECT_NE(err.find("different settings"), std::string::npos) << err;
  EXPECT_NE(err.find("dtype"), std::string::npos) << err;
}

TEST_F(Extract, Bf16WeightsWithFp32ComputeAreRecorded) {
  const std::string out = path("wbf16");
  std::string err;
  ASSERT_EQ(run({"extract", "--model", model(), "--dataset", shared("arc-agi/evaluation"), "--max-samples", "2",
                 "--layers", "2", "--dtype", "fp32", "--weights-dtype", "bf16", "--out-dtype", "fp32", "--out", out},
                &err),
            0)
      << err;
  EXPECT_NE(err.find("weights bf16"), std::string::npos) << err;
  Json m = read_json_file(out + "/manifest.json");
  EXPECT_EQ(m["dtype"], "fp32");
  EXPECT_EQ(m["weights_dtype"], "bf16");
  EXPECT_EQ(m["identity"]["settings"]["weights_dtype"], "bf16");  // changes the bytes, so part of the identity
  EXPECT_EQ(run({"extract", "--model", model(), "--dataset", shared("arc-agi/evaluation"), "--max-samples", "2",
                 "--layers", "2", "--dtype", "fp32", "--weights-dtype", "fp16", "--quiet", "--out", path("wfp16")},
                &err),
            1);
  EXPECT_NE(err.find("--weights-dtype"), std::string::npos) << err;
}

TEST_F(Extract, NumpyReaderLoadsARealCompressedRun) {
  const std::string out = path("zst");
  ASSERT_EQ(run({"extract", "--model", model(), "--dataset", shared("arc-agi/evaluation"), "--max-samples", "5",
                 "--compress", "zstd", "--shard-size", "100000", "--quiet", "--out", out, "--exclude-special-tokens",
                 "--hooks", "blocks.{0,2}.hook_resid_post,blocks.1.mlp.hook_post,blocks.3.attn.hook_z"}),
            0);
  // --verify recomputes the manifest's statistics with numpy over the stored (bf16) rows of every shard.
  const std::string script = std::string(FME_SOURCE_DIR) + "/examples/read_shards.py";
  const std::string log = out + ".py.log";
  int code = std::system(("/usr/bin/python3 " + script + " --verify " + out + " >" + log + " 2>&1").c_str());
  EXPECT_EQ(code, 0) << read_file(log);
  Json m = read_json_file(out + "/manifest.json");
  EXPECT_NE(read_file(log).find(std::to_string(m["totals"]["tokens"].get<int64_t>())), std::string::npos) << read_file(log);
  // And one shard decompresses to a valid safetensors with the documented tensors.
  std::string raw = zstd_decompress(read_file(out + "/" + m["shards"][0]["file"].get<std::string>()), "shard");
  write_file_atomic(out + ".raw.safetensors", raw);
  auto t = read_safetensors(out + ".raw.safetensors");
  for (const char* n : {"token_ids", "token_positions", "sample_index", "sample_offsets", "blocks.0.hook_resid_post",
                        "blocks.2.hook_resid_post", "blocks.1.mlp.hook_post", "blocks.3.attn.hook_z"})
    EXPECT_EQ(t.count(n), 1u) << n;
  EXPECT_GE(m["shards"].size(), 2u);
  // A statistic that does not match the rows is caught.
  m["stats"]["blocks.1.mlp.hook_post"]["mean"][3] = m["stats"]["blocks.1.mlp.hook_post"]["mean"][3].get<double>() + 1e-3;
  write_file_atomic(out + "/manifest.json", m.dump(2));
  code = std::system(("/usr/bin/python3 " + script + " --verify " + out + " >" + log + " 2>&1").c_str());
  EXPECT_NE(code, 0) << read_file(log);
  EXPECT_NE(read_file(log).find("stats.blocks.1.mlp.hook_post.mean"), std::string::npos) << read_file(log);
}

}  // namespace
}  // namespace fme

namespace fme {
namespace {

// The token ids of extracted ARC prompts equal those of the seed's prompts (arc24's code + HF tokenizers).
TEST_F(Extract, ArcTokenIdsEqualTheSeedsPromptIds) {
  std::ifstream in(shared("prompts/expected_prompts.jsonl"));
  std::string tasks;
  std::vector<std::vector<int32_t>> want;
  for (std::string line; std::getline(in, line);) {
    Json e = Json::parse(line);
    if (e["hflip"] == true || e["rot90"] != 0 || e["test_index"] != 0) continue;
    Json task = read_json_file(shared(e["task_file"].get<std::string>()));
    if (task["test"].size() != 1) continue;  // one prompt per test input: keep tasks with exactly one
    task["task_id"] = e["task_file"];
    tasks += task.dump() + "\n";
    want.push_back(e["qwen2_5_ids"].get<std::vector<int32_t>>());
  }
  ASSERT_GE(want.size(), 5u);
  write_file_atomic(path("expected.jsonl"), tasks);
  const std::string out = path("arc-ids");
  std::string err;
  ASSERT_EQ(run({"extract", "--model", model(), "--dataset", path("expected.jsonl"), "--layers", "0", "--quiet", "--out", out}, &err), 0) << err;
  Json m = read_json_file(out + "/manifest.json");
  EXPECT_EQ(m["dataset"]["kind"], "arc-jsonl");
  size_t seen = 0;
  for (const auto& s : m["shards"]) {
    auto shard = read_safetensors(out + "/" + s["file"].get<std::string>());
    at::Tensor ids = shard.at("token_ids"), off = shard.at("sample_offsets"), idx = shard.at("sample_index");
    for (int64_t j = 0; j < idx.size(0); ++j, ++seen) {
      const auto& w = want.at(idx[j].item<int64_t>());
      at::Tensor got = ids.slice(0, off[j].item<int64_t>(), off[j + 1].item<int64_t>());
      ASSERT_EQ(got.size(0), static_cast<int64_t>(w.size())) << "sample " << idx[j].item<int64_t>();
      EXPECT_TRUE(at::equal(got, at::tensor(w, at::kInt))) << "sample " << idx[j].item<int64_t>();
    }
  }
  EXPECT_EQ(seen, want.size());
}

// ARC prompts follow the model's own chat template: a Llama 3 model's prompts open with its BOS once (the
// template writes it; the tokenizer adds none), and runs wrapped the old way resume only when asked to.
TEST_F(Extract, ArcPromptsFollowTheModelsChatTemplate) {
  const std::string dir = path("llama3-model");
  Json config{{"model_type", "llama"}, {"vocab_size", 128256}, {"hidden_size", 16}, {"intermediate_size", 32},
              {"num_hidden_layers", 1}, {"num_attention_heads", 2}, {"num_key_value_heads", 1},
              {"max_position_embeddings", 8192}, {"rms_norm_eps", 1e-5}, {"rope_theta", 500000.0}, {"hidden_act", "silu"}};
  {
    auto m = create_model(parse_model_config(config, dir));
    init_weights(*m, 1);
    write_model_dir(*m, dir, at::kFloat, "");
  }
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(shared(std::string("tokenizers/llama3/") + f), dir + "/" + f);
  const std::string tasks = shared("arc-agi/training"), out = path("llama3-run");
  std::string err;
  ASSERT_EQ(run({"extract", "--model", dir, "--dataset", tasks, "--max-samples", "2", "--layers", "0", "--quiet", "--out", out}, &err), 0) << err;
  Json m = read_json_file(out + "/manifest.json");
  EXPECT_EQ(m["prompt"]["chat"], "llama3") << m["prompt"].dump();
  EXPECT_EQ(m["identity"]["settings"]["chat"], "llama3");
  const Tokenizer tok = Tokenizer::from_file(dir);
  auto shard = read_safetensors(out + "/" + m["shards"][0]["file"].get<std::string>());
  at::Tensor ids = shard.at("token_ids"), off = shard.at("sample_offsets");
  ASSERT_GE(off.size(0), 2);
  std::vector<int32_t> first;
  for (int64_t i = off[0].item<int64_t>(); i < off[1].item<int64_t>(); ++i) first.push_back(ids[i].item<int32_t>());
  const int32_t bos = 128000;  // <|begin_of_text|>
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(first[0], bos);
  EXPECT_EQ(std::count(first.begin(), first.end(), bos), 1);
  const std::string text = tok.decode(first);
  EXPECT_EQ(text.rfind("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful AI assistant.", 0), 0u) << text.substr(0, 200);
  EXPECT_NE(text.find("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n### Output\n\n```grid"), std::string::npos);

  // A run wrapped in the prompt template's own text (as before --chat) resumes with --chat template only.
  const std::string old = path("llama3-template-run");
  ASSERT_EQ(run({"extract", "--model", dir, "--dataset", tasks, "--max-samples", "1", "--layers", "0", "--quiet", "--chat",
                 "template", "--out", old}, &err), 0) << err;
  EXPECT_FALSE(read_json_file(old + "/manifest.json")["identity"]["settings"].contains("chat"));
  EXPECT_NE(run({"extract", "--model", dir, "--dataset", tasks, "--max-samples", "1", "--layers", "0", "--quiet", "--resume",
                 "--out", old}, &err), 0);
  EXPECT_NE(err.find("resume it with --chat template"), std::string::npos) << err;
  EXPECT_EQ(run({"extract", "--model", dir, "--dataset", tasks, "--max-samples", "1", "--layers", "0", "--quiet", "--resume",
                 "--chat", "template", "--out", old}, &err), 0) << err;
}

// A full disk (here: a file-size limit) is a clear error; the run stays consistent and resumes to the same bytes.
TEST_F(Extract, FullDiskIsAClearErrorAndTheRunResumes) {
  const std::string args = " extract --model " + model() + " --dataset " + shared("arc-agi/evaluation") +
                           " --max-samples 8 --shard-size 300000 --layers 0,1 --dtype fp32 --quiet --out ";
  const std::string ref = path("disk-ref"), out = path("disk");
  ASSERT_EQ(std::system((kFme + args + ref + " >/dev/null").c_str()), 0);
  const std::string log = path("disk.err");
  int status = std::system(("bash -c 'ulimit -f 600; exec " + kFme + args + out + "' >/dev/null 2>" + log).c_str());
  EXPECT_NE(status, 0);
  const std::string err = read_file(log);
  EXPECT_NE(err.find("write failed"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  Json m = read_json_file(out + "/manifest.json");  // still parses: written atomically
  EXPECT_EQ(m["complete"], false);
  ASSERT_EQ(std::system((kFme + args + out + " --resume >/dev/null").c_str()), 0);
  auto want = run_files(ref), got = run_files(out);
  EXPECT_EQ(got.size(), want.size());
  for (const auto& [name, bytes] : want) EXPECT_TRUE(got[name] == bytes) << name;
}

}  // namespace
}  // namespace fme

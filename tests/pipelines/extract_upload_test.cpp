// `fme extract` into object storage, against an S3 server on loopback that checks signatures as S3 does
// (storage/s3_test_server.h): the bucket prefix holds
// the run's files byte for byte; a run killed mid-upload (--out s3:// --staging --delete-local) resumes to
// the same objects as an uninterrupted local run; preflight errors come before any compute and name the
// endpoint, bucket and status; a remote run from other settings is refused; ranks sharing a run cut into work
// units put one run into the bucket, also when killed and resumed on another number of ranks.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "dist/launch_env.h"
#include "storage/s3_client.h"
#include "storage/s3_test_server.h"
#include "util/file.h"
#include "util/json.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

using test::kFme;
using test::S3TestServer;
using test::shared;

class ExtractUpload : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("fme-extract-s3-" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    server_ = new S3TestServer({"fme-test"});
    setenv("AWS_ACCESS_KEY_ID", S3TestServer::kAccessKey, 1);
    setenv("AWS_SECRET_ACCESS_KEY", S3TestServer::kSecretKey, 1);
    ASSERT_EQ(fme({"init", "--preset", "qwen2-tiny", "--out", path("model"), "--seed", "1"}).code, 0);
  }
  static void TearDownTestSuite() {
    delete server_;
    fs::remove_all(root_);
  }
  static std::string path(const std::string& n) { return (root_ / n).string(); }

  struct Out {
    int code;
    std::string out, err;
  };
  // Runs fme with `args`; `env`: NAME=value set for it alone.
  static Out fme(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    const std::string log = path("log");
    const pid_t pid = fork();
    if (pid == 0) {
      if (!std::freopen(log.c_str(), "w", stdout) || !std::freopen((log + ".err").c_str(), "w", stderr)) _exit(126);
      for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> argv{const_cast<char*>(kFme.c_str())};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(kFme.c_str(), argv.data());
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), read_file(log), read_file(log + ".err")};
  }
  // A small ARC extraction of 12 prompts in ~11 shards; with `s3`, to the test server in parts of 5 MiB
  // (--shard-size and --part-size as `more` gives them, if it does).
  static std::vector<std::string> extract(const std::vector<std::string>& more, bool s3 = true) {
    auto given = [&](const char* flag) { return std::find(more.begin(), more.end(), flag) != more.end(); };
    std::vector<std::string> a{"extract", "--model", path("model"), "--dataset", shared("arc-agi/evaluation"), "--max-samples", "12",
                               "--dtype", "fp32", "--quiet"};
    if (!given("--shard-size")) a.insert(a.end(), {"--shard-size", "200000"});
    if (s3) a.insert(a.end(), {"--s3-endpoint", server_->endpoint()});
    if (s3 && !given("--part-size")) a.insert(a.end(), {"--part-size", "5242880"});
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
  storage::S3Client client() const {
    storage::S3Config c;
    c.endpoint = server_->endpoint();
    c.access_key = S3TestServer::kAccessKey;
    c.secret_key = S3TestServer::kSecretKey;
    return storage::S3Client(c);
  }
  // Every file of the local run `dir` equals the object of the same name under `prefix`; how many.
  int expect_mirrored(const std::string& dir, const std::string& prefix) {
    storage::S3Client c = client();
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (name.front() == '.') continue;
      EXPECT_TRUE(c.get("fme-test", prefix + "/" + name) == read_file(e.path().string())) << name;
      ++n;
    }
    return n;
  }

  static fs::path root_;
  static S3TestServer* server_;
};
fs::path ExtractUpload::root_;
S3TestServer* ExtractUpload::server_ = nullptr;

TEST_F(ExtractUpload, TheBucketPrefixHoldsTheRunByteForByte) {
  const Out r = fme(extract({"--out", path("local"), "--upload", "s3://fme-test/runs/a", "--max-staged", "1"}));
  ASSERT_EQ(r.code, 0) << r.err;
  const Json s = Json::parse(r.out);
  EXPECT_EQ(s.at("upload").at("url"), "s3://fme-test/runs/a");
  EXPECT_EQ(s.at("upload").at("shards"), s.at("shards"));
  EXPECT_GE(s.at("shards").get<int>(), 5);
  EXPECT_GE(s.at("upload").at("wait_seconds").get<double>(), 0.0);  // --max-staged 1: every commit waits for its upload
  EXPECT_EQ(expect_mirrored(path("local"), "runs/a"), s.at("shards").get<int>() + 2);  // + samples.jsonl, manifest.json
  // A finished run's --resume leaves the objects as they are: no shard is sent again.
  server_->puts();
  EXPECT_EQ(fme(extract({"--out", path("local"), "--upload", "s3://fme-test/runs/a", "--resume"})).code, 0);
  EXPECT_EQ(server_->puts().find("shard-"), std::string::npos);
  // The same prefix again for a new run: refused, naming the remote manifest.
  const Out again = fme(extract({"--out", path("other"), "--upload", "s3://fme-test/runs/a"}));
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("s3://fme-test/runs/a/manifest.json: a run is already there"), std::string::npos) << again.err;
  // A --resume with other settings: the remote manifest says what differs.
  const Out other = fme(extract({"--out", path("local"), "--upload", "s3://fme-test/runs/a", "--resume", "--out-dtype", "fp32"}));
  EXPECT_EQ(other.code, 1);
  EXPECT_NE(other.err.find("s3://fme-test/runs/a/manifest.json: the run there was made with other settings: settings.out_dtype"),
            std::string::npos)
      << other.err;
  EXPECT_EQ(server_->audit(), "") << "no manifest was put before the objects it lists";
}

TEST_F(ExtractUpload, AKilledUploadResumesToTheObjectsOfAnUninterruptedRun) {
  ASSERT_EQ(fme(extract({"--out", path("plain")}, /*s3=*/false)).code, 0);
  const std::vector<std::string> args = extract({"--out", "s3://fme-test/runs/b", "--staging", path("staging"), "--delete-local"});
  const Out killed = fme(args, {"FME_FAILPOINT=extract.upload.shard_uploaded@3"});
  EXPECT_EQ(killed.code, 128 + 9) << killed.err;
  std::vector<std::string> resume = args;
  resume.push_back("--resume");
  const Out r = fme(resume);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out).at("upload").at("shards"), Json::parse(r.out).at("shards"));
  EXPECT_EQ(expect_mirrored(path("plain"), "runs/b"), Json::parse(r.out).at("shards").get<int>() + 2);
  // --delete-local: the staging directory keeps only the small files.
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(path("staging"))) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"manifest.json", "samples.jsonl"}));
  EXPECT_EQ(server_->audit(), "") << "no manifest was put before the objects it lists";
}

// A kill in the middle of a multipart upload leaves the upload journaled; the resume aborts it (the store drops
// its parts) and sends the shard again.
TEST_F(ExtractUpload, AMultipartUploadCutByAKillIsAbortedOnResume) {
  const std::vector<std::string> args =
      extract({"--out", path("mp"), "--upload", "s3://fme-test/runs/c", "--shard-size", "100000000", "--upload-parallel", "1"});
  const Out killed = fme(args, {"FME_FAILPOINT=extract.upload.part_sent"});
  EXPECT_EQ(killed.code, 128 + 9) << killed.err;
  const Json journal = read_json_file(path("mp/.s3-uploads.json"));
  ASSERT_TRUE(journal.contains("runs/c/shard-00000.safetensors")) << journal.dump();
  std::vector<std::string> resume = args;
  resume.push_back("--resume");
  const Out r = fme(resume);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "") << "the abort succeeds";
  const std::string upload_id = journal.at("runs/c/shard-00000.safetensors").get<std::string>();
  try {
    client().put_part("fme-test", "runs/c/shard-00000.safetensors", upload_id, 2, std::string(5u << 20, 'x'));
    ADD_FAILURE() << "the journaled upload was aborted";
  } catch (const storage::S3Error& e) {
    EXPECT_EQ(e.http_status, 404);
  }
  EXPECT_FALSE(fs::exists(path("mp/.s3-uploads.json")));
  EXPECT_EQ(Json::parse(r.out).at("shards"), 1);
  EXPECT_EQ(expect_mirrored(path("mp"), "runs/c"), 3);
}

// Three ranks share one run cut into work units, written to the bucket (--out s3:// --staging, shared by the
// ranks, --delete-local): each rank uploads the units it computes while it computes the next, and rank 0 the
// run's manifest, which lists a unit only once its objects are verified. The bucket then holds what one process
// writes locally, byte for byte (the manifests' rank fields aside), also after all ranks were killed at
// different points (one of them between a shard's upload and its unit's manifest) and 2 ranks resumed.
TEST_F(ExtractUpload, RanksPutOneUnitRunIntoTheBucket) {
  const std::vector<std::string> common{"--unit-samples", "3", "--threads", "1"};
  std::vector<std::string> local = extract(common, /*s3=*/false);
  local.insert(local.end(), {"--out", path("units-local")});
  ASSERT_EQ(fme(local).code, 0);
  // Every file of the local run, as the bucket must hold it (manifests: what does not name a rank).
  auto comparable = [](const std::string& name, const std::string& bytes) {
    if (fs::path(name).filename() != "manifest.json") return bytes;
    Json m = Json::parse(bytes);
    for (auto& s : m["shards"]) s.erase("rank");
    m.erase("unit");
    m.erase("compute");  // the dtype probe's figures differ from process to process
    return m.dump();
  };
  std::map<std::string, std::string> want;
  for (const auto& e : fs::recursive_directory_iterator(path("units-local")))
    if (e.is_regular_file()) {
      const std::string rel = e.path().lexically_relative(path("units-local")).string();
      want[rel] = comparable(rel, read_file(e.path().string()));
    }
  ASSERT_GE(want.size(), 4u * 3 + 2);
  auto expect_bucket_holds_the_run = [&](const std::string& prefix) {
    storage::S3Client c = client();
    for (const auto& [name, bytes] : want) {
      std::string got;
      try {
        got = c.get("fme-test", prefix + "/" + name);
      } catch (const storage::S3Error& e) {
        ADD_FAILURE() << name << ": " << e.what();
        continue;
      }
      EXPECT_TRUE(comparable(name, got) == bytes) << name;
    }
    const Json m = Json::parse(c.get("fme-test", prefix + "/manifest.json"));
    EXPECT_TRUE(m.at("complete").get<bool>());
    std::set<int> ranks;
    for (const auto& s : m.at("shards")) ranks.insert(s.at("rank").get<int>());
    return ranks;
  };
  const std::string base = kFme + " extract --model " + path("model") + " --dataset " + shared("arc-agi/evaluation") +
                           " --max-samples 12 --dtype fp32 --quiet --shard-size 200000 --part-size 5242880 --unit-samples 3" +
                           " --threads 1 --timeout 60 --delete-local --s3-endpoint " + server_->endpoint();
  // `kills`: a failpoint per rank ("" for none), set by a script that reads RANK.
  auto launch = [&](int world, const std::string& prefix, const std::vector<std::string>& kills, const std::string& more) {
    std::ofstream script(path("launch.sh"));
    for (size_t r = 0; r < kills.size(); ++r)
      if (!kills[r].empty()) script << "if [ \"$RANK\" = " << r << " ]; then export FME_FAILPOINT=" << kills[r] << "; fi\n";
    script << "exec timeout 300 " << base << more << " --out s3://fme-test/" << prefix << " --staging " << path(prefix) << "\n";
    script.close();
    return dist::run_local_world(world, "sh " + path("launch.sh"), path("rank"), false);
  };
  server_->inject_faults(503, 4);  // answers the ranks' clients retry (a busy store; resets: storage_test)
  ASSERT_EQ(launch(3, "ranks", {}, ""), 0) << read_file(path("rank0.err")) << read_file(path("rank1.err")) << read_file(path("rank2.err"));
  EXPECT_GE(expect_bucket_holds_the_run("ranks").size(), 2u) << "the units were shared between ranks";
  // The staging directory keeps the small files only, and no journal of an open upload.
  for (const auto& e : fs::recursive_directory_iterator(path("ranks")))
    if (e.is_regular_file()) EXPECT_EQ(e.path().filename().string().find("shard-"), std::string::npos) << e.path();

  // Every rank killed (rank 1 between a shard's upload and its unit's end), then the same command on 2 ranks.
  EXPECT_NE(launch(3, "killed", {"extract.unit.committed@1", "extract.upload.shard_uploaded@2", "extract.shard.committed@2"}, ""), 0);
  ASSERT_EQ(launch(2, "killed", {}, " --resume"), 0) << read_file(path("rank0.err")) << read_file(path("rank1.err"));
  expect_bucket_holds_the_run("killed");
  EXPECT_EQ(server_->audit(), "") << "no manifest was put before the objects it lists";
}

TEST_F(ExtractUpload, PreflightErrorsComeBeforeAnyCompute) {
  auto one_line = [](const Out& r) { return std::count(r.err.begin(), r.err.end(), '\n') == 1; };
  Out r = fme(extract({"--out", path("p1"), "--upload", "s3://fme-test/runs/p"}), {"AWS_ACCESS_KEY_ID=WRONG"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(one_line(r)) << r.err;
  EXPECT_NE(r.err.find("s3://fme-test at " + server_->endpoint() + ": HTTP 403 InvalidAccessKeyId"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(path("p1"))) << "nothing is written before the store answers";
  r = fme(extract({"--out", path("p2"), "--upload", "s3://no-such-bucket/runs/p"}));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("s3://no-such-bucket at " + server_->endpoint() + ": HTTP 404 NoSuchBucket"), std::string::npos) << r.err;
  const std::string closed = "http://127.0.0.1:" + std::to_string(S3TestServer::free_port());
  std::vector<std::string> a = extract({"--out", path("p3"), "--upload", "s3://fme-test/runs/p"});
  a[std::find(a.begin(), a.end(), "--s3-endpoint") - a.begin() + 1] = closed;
  r = fme(a);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("s3://fme-test at " + closed + ": cannot connect"), std::string::npos) << r.err;
  r = fme(extract({"--out", path("p4"), "--upload", "s3://fme-test/runs/p"}), {"AWS_SECRET_ACCESS_KEY="});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"), std::string::npos) << r.err;
  // Options that do not go together.
  r = fme(extract({"--out", "s3://fme-test/runs/p"}));
  EXPECT_NE(r.err.find("--out s3://fme-test/runs/p: a run in object storage is written locally first: give --staging DIR"),
            std::string::npos)
      << r.err;
  r = fme(extract({"--out", path("p5"), "--upload", "s3://fme-test/runs/p", "--part-size", "1000"}));
  EXPECT_NE(r.err.find("--part-size 1000: S3 needs parts of at least 5 MiB"), std::string::npos) << r.err;
  r = fme(extract({"--out", path("p6"), "--upload", "gs://bucket/x"}));
  EXPECT_NE(r.err.find("--upload 'gs://bucket/x': expected s3://bucket/prefix"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace fme

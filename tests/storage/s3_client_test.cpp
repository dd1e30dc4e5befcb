// The S3 client against an S3 server on loopback that checks every signature (s3_test_server.h): objects and
// multipart uploads round-trip byte for byte and are verified; an aborted upload takes no more parts;
// preflight errors name the endpoint, the
// bucket and S3's status; transient failures are retried until the store answers.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "s3_test_server.h"
#include "storage/s3_client.h"
#include "storage/s3_location.h"
#include "util/error.h"
#include "util/sha256.h"

namespace fme::storage {
namespace {

using test::S3TestServer;

S3Config config_for(const std::string& endpoint, const std::string& key = S3TestServer::kAccessKey) {
  S3Config c;
  c.endpoint = endpoint;
  c.access_key = key;
  c.secret_key = S3TestServer::kSecretKey;
  c.backoff_s = 0.05;
  return c;
}

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    for (size_t k = 0; k < 8 && i + k < n; ++k) s[i + k] = static_cast<char>(v >> (8 * k));
  }
  return s;
}

class S3 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new S3TestServer({"fme-test"}); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static S3TestServer* server_;
};
S3TestServer* S3::server_ = nullptr;

TEST(S3LocationTest, ParsesBucketAndPrefix) {
  const S3Location l = S3Location::parse("s3://my-bucket/runs/exp1/", "--upload");
  EXPECT_EQ(l.bucket, "my-bucket");
  EXPECT_EQ(l.prefix, "runs/exp1");
  EXPECT_EQ(l.key("shard-00000.safetensors"), "runs/exp1/shard-00000.safetensors");
  EXPECT_EQ(l.url(), "s3://my-bucket/runs/exp1");
  EXPECT_EQ(S3Location::parse("s3://bkt", "--upload").key("m.json"), "m.json");
  for (const char* bad : {"/local/dir", "s3://", "s3://Upper/x", "s3://ab/x", "s3://-bad/x", "s3://ok-bucket/a//b"}) {
    try {
      S3Location::parse(bad, "--upload");
      ADD_FAILURE() << bad;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("--upload '") + bad + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(S3ConfigTest, FromTheStandardEnvironment) {
  setenv("AWS_ACCESS_KEY_ID", "AK", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
  setenv("AWS_SESSION_TOKEN", "TOK", 1);
  setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
  unsetenv("AWS_REGION");
  unsetenv("AWS_ENDPOINT_URL");
  unsetenv("AWS_ENDPOINT_URL_S3");
  S3Config c = S3Config::from_environment();
  EXPECT_EQ(c.access_key, "AK");
  EXPECT_EQ(c.secret_key, "SK");
  EXPECT_EQ(c.session_token, "TOK");
  EXPECT_EQ(c.region, "eu-west-1");
  EXPECT_EQ(c.endpoint, "https://s3.eu-west-1.amazonaws.com");
  setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/", 1);
  EXPECT_EQ(S3Config::from_environment().endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(S3Config::from_environment("https://storage.googleapis.com").endpoint, "https://storage.googleapis.com");
  EXPECT_THROW(S3Config::from_environment("storage.googleapis.com"), ConfigError);
  unsetenv("AWS_SECRET_ACCESS_KEY");
  try {
    S3Config::from_environment();
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("AWS_SECRET_ACCESS_KEY"), std::string::npos);
  }
  for (const char* v : {"AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"}) unsetenv(v);
}

TEST_F(S3, ObjectsRoundTripWithTheirMetadata) {
  S3Client c(config_for(server_->endpoint()));
  c.check_bucket("fme-test");
  const std::string data = random_bytes(100000, 1) + "odd key: spaces, +, =, é";
  c.put("fme-test", "runs/a b+c=é/manifest.json", data, {{"sha256", sha256_hex(data)}});
  const S3Object o = c.head("fme-test", "runs/a b+c=é/manifest.json");
  ASSERT_TRUE(o.exists);
  EXPECT_EQ(o.size, data.size());
  EXPECT_EQ(o.meta.at("sha256"), sha256_hex(data));
  EXPECT_EQ(c.get("fme-test", "runs/a b+c=é/manifest.json"), data);
  EXPECT_FALSE(c.head("fme-test", "runs/nothing-here").exists);
  try {
    c.get("fme-test", "runs/nothing-here");
    ADD_FAILURE();
  } catch (const S3Error& e) {
    EXPECT_EQ(e.http_status, 404);
    EXPECT_NE(std::string(e.what()).find("GET s3://fme-test/runs/nothing-here at " + server_->endpoint() + ": HTTP 404 NoSuchKey"),
              std::string::npos)
        << e.what();
  }
  c.remove("fme-test", "runs/a b+c=é/manifest.json");
  EXPECT_FALSE(c.head("fme-test", "runs/a b+c=é/manifest.json").exists);
}

TEST_F(S3, LargeFilesGoAsVerifiedMultipartUploads) {
  S3Client c(config_for(server_->endpoint()));
  const std::string path = (std::filesystem::temp_directory_path() / ("fme-s3-part-" + std::to_string(getpid()))).string();
  const std::string data = random_bytes((13u << 20) + 12345, 2);  // 3 parts of 5 MiB, the last one short
  std::ofstream(path, std::ios::binary) << data;
  uint64_t reported = 0;
  std::mutex mu;
  c.put_file("fme-test", "big/shard-00000.safetensors", path, 5u << 20, 2, {{"sha256", sha256_hex(data)}}, [&](uint64_t n) {
    std::lock_guard<std::mutex> lock(mu);
    reported += n;
  });
  EXPECT_EQ(reported, data.size());
  const S3Object o = c.head("fme-test", "big/shard-00000.safetensors");
  EXPECT_EQ(o.size, data.size());
  EXPECT_EQ(o.meta.at("sha256"), sha256_hex(data));
  EXPECT_NE(o.etag.find("-3"), std::string::npos) << "a 3-part upload's ETag: " << o.etag;
  EXPECT_TRUE(c.get("fme-test", "big/shard-00000.safetensors") == data);
  EXPECT_THROW(c.put_file("fme-test", "big/x", path, 1u << 20, 2), ConfigError);  // S3's 5 MiB minimum part
  std::filesystem::remove(path);
}

TEST_F(S3, AnAbortedUploadTakesNoMoreParts) {
  S3Client c(config_for(server_->endpoint()));
  const std::string id = c.begin_upload("fme-test", "aborted/one");
  const std::string part = random_bytes(5u << 20, 3);
  EXPECT_EQ(c.put_part("fme-test", "aborted/one", id, 1, part).size(), 32u) << "the part's MD5 as its ETag";
  c.abort_upload("fme-test", "aborted/one", id);
  c.abort_upload("fme-test", "aborted/one", id);  // already gone: not an error
  try {
    c.put_part("fme-test", "aborted/one", id, 2, part);
    ADD_FAILURE();
  } catch (const S3Error& e) {
    EXPECT_EQ(e.http_status, 404);
    EXPECT_NE(std::string(e.what()).find("PUT s3://fme-test/aborted/one at " + server_->endpoint() + " part 2: HTTP 404 NoSuchUpload"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(c.head("fme-test", "aborted/one").exists) << "an upload never completed stores no object";
}

TEST_F(S3, PreflightErrorsNameTheEndpointBucketAndStatus) {
  try {
    S3Client(config_for(server_->endpoint(), "NOT-A-KEY")).check_bucket("fme-test");
    ADD_FAILURE();
  } catch (const S3Error& e) {
    EXPECT_EQ(e.http_status, 403);
    EXPECT_NE(std::string(e.what()).find("s3://fme-test at " + server_->endpoint() + ": HTTP 403 InvalidAccessKeyId"), std::string::npos)
        << e.what();
  }
  S3Config wrong_secret = config_for(server_->endpoint());
  wrong_secret.secret_key = "not-the-secret";
  try {
    S3Client(wrong_secret).put("fme-test", "k", "v");
    ADD_FAILURE();
  } catch (const S3Error& e) {
    EXPECT_EQ(e.http_status, 403);
    EXPECT_NE(std::string(e.what()).find("PUT s3://fme-test/k at " + server_->endpoint() + ": HTTP 403 SignatureDoesNotMatch"),
              std::string::npos)
        << e.what();
  }
  try {
    S3Client(config_for(server_->endpoint())).check_bucket("no-such-bucket");
    ADD_FAILURE();
  } catch (const S3Error& e) {
    EXPECT_EQ(e.http_status, 404);
    EXPECT_NE(std::string(e.what()).find("s3://no-such-bucket at " + server_->endpoint() + ": HTTP 404 NoSuchBucket"), std::string::npos)
        << e.what();
  }
  const std::string closed = "http://127.0.0.1:" + std::to_string(S3TestServer::free_port());
  const auto t0 = std::chrono::steady_clock::now();
  try {
    S3Client(config_for(closed)).check_bucket("fme-test");
    ADD_FAILURE();
  } catch (const S3Error& e) {
    EXPECT_EQ(e.http_status, 0);
    EXPECT_NE(std::string(e.what()).find("HEAD s3://fme-test at " + closed + ": cannot connect or no answer"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
}

// A store that is not up yet (refused connections) is retried with backoff until it answers.
TEST(S3Retry, RequestsAreRetriedUntilTheStoreAnswers) {
  const int port = S3TestServer::free_port();
  S3Config c = config_for("http://127.0.0.1:" + std::to_string(port));
  c.backoff_s = 0.5;
  c.max_attempts = 8;  // up to ~0.5 + 1 + 2 + 4 + 8 s of waiting: the server starts well within that
  std::unique_ptr<S3TestServer> later;
  std::thread start([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    later = std::make_unique<S3TestServer>(std::vector<std::string>{"late"}, port, /*wait=*/false);
  });
  S3Client client(c);
  std::string error;
  try {
    client.put("late", "k", "v");
  } catch (const std::exception& e) {
    error = e.what();
  }
  start.join();
  EXPECT_EQ(error, "");
  EXPECT_EQ(client.get("late", "k"), "v");
}

// 5xx answers and dropped connections are retried with backoff, within max_attempts; past them the error
// names the last status. Every part of a multipart upload is retried on its own.
TEST_F(S3, FailedAnswersAreRetriedWithBackoff) {
  S3Config cfg = config_for(server_->endpoint());
  cfg.backoff_s = 0.05;
  cfg.max_attempts = 4;
  S3Client c(cfg);
  server_->inject_faults(503, 2);
  server_->inject_faults(0, 1);  // then a reset
  c.put("fme-test", "retry/a", "after three failures");
  EXPECT_EQ(c.get("fme-test", "retry/a"), "after three failures");
  server_->inject_faults(500, 4);  // as many as the attempts: the last answer is the error
  try {
    c.put("fme-test", "retry/b", "never");
    ADD_FAILURE() << "four failed attempts of four";
  } catch (const S3Error& e) {
    EXPECT_EQ(e.http_status, 500);
    EXPECT_NE(std::string(e.what()).find("PUT s3://fme-test/retry/b at " + server_->endpoint() + ": HTTP 500 InternalError"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(c.head("fme-test", "retry/b").exists);
  // A multipart upload through faults: 3 parts, failures spread over its requests.
  const std::string data = random_bytes((5u << 20) * 2 + 1000, 7);
  const std::string file = (std::filesystem::temp_directory_path() / ("fme-s3-retry-" + std::to_string(getpid()))).string();
  std::ofstream(file, std::ios::binary) << data;
  server_->inject_faults(502, 1);
  server_->inject_faults(0, 1);
  server_->inject_faults(503, 1);
  c.put_file("fme-test", "retry/big", file, 5u << 20, 1);
  EXPECT_TRUE(c.get("fme-test", "retry/big") == data);
  std::filesystem::remove(file);
}

}  // namespace
}  // namespace fme::storage

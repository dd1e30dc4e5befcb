// A small S3 client over libcurl: what fme needs to put a run into any S3-compatible store (AWS S3, MinIO,
// Ceph, Google Cloud Storage's XML API with HMAC keys), and read back what it needs to resume.
//
// Requests are signed by libcurl's own AWS SigV4 (CURLOPT_AWS_SIGV4); fme adds only the payload's sha256
// header, which S3 requires and libcurl 7.88 does not add. Buckets are addressed path-style
// (endpoint/bucket/key), which every S3 implementation accepts. Transient failures (HTTP 500, 502, 503,
// 504, 429, timeouts, resets, refused connections) are retried with exponential backoff and full jitter;
// anything else is an S3Error naming the method, the object, the endpoint and the HTTP status with S3's
// error code and message.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "util/error.h"

namespace fme::storage {

struct S3Error : Error {
  S3Error(const std::string& what, long status) : Error(what), http_status(status) {}
  long http_status = 0;  // 0: no HTTP answer (connection, timeout)
};

struct S3Config {
  std::string endpoint;  // scheme://host[:port]
  std::string region = "us-east-1";
  std::string access_key, secret_key, session_token;
  long connect_timeout_s = 10;
  long timeout_s = 300;    // one request, a part's upload included
  int max_attempts = 6;    // per request, the first included
  double backoff_s = 0.5;  // the first retry waits up to this; each further one twice as long (full jitter)

  // The standard environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION (else
  // AWS_DEFAULT_REGION, else us-east-1), AWS_ENDPOINT_URL_S3 (else AWS_ENDPOINT_URL, else AWS S3 of the
  // region). `endpoint`, when not empty (--s3-endpoint), wins. ConfigError when credentials are missing or the
  // endpoint is not http(s)://host[:port].
  static S3Config from_environment(const std::string& endpoint = "");
};

struct S3Object {
  bool exists = false;
  uint64_t size = 0;
  std::string etag;                           // without quotes
  std::map<std::string, std::string> meta;    // x-amz-meta-* headers, by the name after the prefix
};

class S3Client {
 public:
  explicit S3Client(S3Config config);
  const S3Config& config() const { return config_; }

  // Preflight: the bucket answers to these credentials. S3Error, e.g. "s3://b at http://127.0.0.1:9000: HTTP
  // 403 InvalidAccessKeyId (...)", "...: HTTP 404 NoSuchBucket", or "...: cannot connect (...)". A request
  // that gets no answer is tried `attempts` times only, so a wrong endpoint fails in seconds; a busy store's
  // 5xx answers get the usual retries.
  void check_bucket(const std::string& bucket, int attempts = 2);
  // HEAD: exists = false on 404.
  S3Object head(const std::string& bucket, const std::string& key);
  // GET of a whole (small) object: a manifest, samples.jsonl. S3Error (404 included) when it cannot.
  std::string get(const std::string& bucket, const std::string& key);
  // PUT of bytes in memory, with Content-MD5; `meta` become x-amz-meta-* headers.
  void put(const std::string& bucket, const std::string& key, const std::string& data,
           const std::map<std::string, std::string>& meta = {});
  // Uploads a local file and verifies it: one PUT when it is at most `part_size` bytes, else a multipart upload
  // of part_size parts, `parallel` in flight (memory: parallel x part_size). Every part is sent with its
  // Content-MD5 and its returned ETag must be that MD5; the stored object's size must be the file's.
  // `on_bytes` (optional) hears of each part sent. S3Error on failure (a started multipart upload is aborted).
  // `on_upload` (optional) hears a multipart upload's id once it starts and "" once it is completed or
  // aborted: a caller journals it to abort the upload after a kill.
  void put_file(const std::string& bucket, const std::string& key, const std::string& path, uint64_t part_size,
                int parallel, const std::map<std::string, std::string>& meta = {},
                const std::function<void(uint64_t)>& on_bytes = {},
                const std::function<void(const std::string&)>& on_upload = {});
  // Starts a multipart upload (what put_file does for large files); its upload id. A caller that may be killed
  // mid-upload journals the id, to abort it on resume (S3 keeps, and bills, the parts of an upload neither
  // completed nor aborted).
  std::string begin_upload(const std::string& bucket, const std::string& key, const std::map<std::string, std::string>& meta = {});
  // Aborts an upload: its parts are dropped. An upload already gone (completed, aborted) is not an error.
  void abort_upload(const std::string& bucket, const std::string& key, const std::string& upload_id);
  // PUT of one part of an upload; its ETag. Sent with its Content-MD5, and checked against its MD5.
  std::string put_part(const std::string& bucket, const std::string& key, const std::string& upload_id, int part_number,
                       const std::string& data);
  void remove(const std::string& bucket, const std::string& key);

  struct Response {
    long status = 0;
    std::string body;
    std::map<std::string, std::string> headers;  // lower-case names
  };

 private:
  // One request, retried as above (`attempts` > 0: at most that many tries while no answer comes). `query` is
  // already canonical (sorted, encoded); `body` may be null.
  Response request(const std::string& method, const std::string& bucket, const std::string& key, const std::string& query,
                   const std::string* body, const std::vector<std::string>& headers, int attempts = 0) const;
  std::string where(const std::string& bucket, const std::string& key) const;  // "s3://b/k at http://host"
  S3Config config_;
};

// AWS's URI encoding: unreserved characters as they are, every other byte as %XX (and '/' kept when
// `keep_slash`, for object keys).
std::string uri_encode(const std::string& s, bool keep_slash);

}  // namespace fme::storage

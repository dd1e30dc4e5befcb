// A run directory mirrored into object storage while it is written: `fme extract --upload s3://bucket/prefix`
// (or --out s3://... --staging DIR). The prefix holds the same relative names and the same bytes as the
// directory, so any S3 tool can copy a run down and read it as a local one.
//
// Uploads run on their own thread, so compute never waits for the network unless the bytes committed and not
// yet uploaded exceed max_staged (then the commit waits, and the wait is reported). After each round of
// shards (each verified: Content-MD5 and ETag per part, then size), samples.jsonl (its committed prefix) and
// manifest.json follow, the manifest last: the remote manifest only ever lists verified shards. Commits
// that arrive while a round is uploading are taken together in the next round.
//
// Resume: a shard whose object already has its size and sha256 (stored as x-amz-meta-sha256) is not sent
// again; multipart uploads a kill left open (journaled in DIR/.s3-uploads.json) are aborted; a remote run
// from other settings is refused.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "storage/s3_client.h"
#include "storage/s3_location.h"
#include "util/json.h"

namespace fme {

struct UploadOptions {
  std::string url;                          // s3://bucket/prefix
  std::string endpoint;                     // --s3-endpoint; empty: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / AWS
  uint64_t part_size = uint64_t(64) << 20;  // multipart above this (S3: >= 5 MiB)
  int parallel = 4;                         // parts in flight (memory: parallel x part_size)
  uint64_t max_staged = uint64_t(8) << 30;  // committed bytes not yet uploaded before commits wait
  bool delete_local = false;                // remove a shard's local file once its upload is verified
};

class RunUpload {
 public:
  // Credentials, endpoint and bucket are checked here (one request), before any compute: S3Error naming the
  // endpoint, the bucket and the HTTP status otherwise.
  RunUpload(const UploadOptions& o, std::string local_dir);
  ~RunUpload();  // stops the upload thread (what is not uploaded stays staged for a --resume)
  RunUpload(const RunUpload&) = delete;
  RunUpload& operator=(const RunUpload&) = delete;

  // The remote run against this one: ConfigError when there is one and this is not a --resume, when its
  // identity differs, or when it is there but the local directory has no run to continue. Aborts the
  // multipart uploads a kill left open. Then starts the upload thread.
  void start(const Json& identity, bool resume, bool local_run_exists);
  // RunDirHooks::stored_elsewhere: the object of `shard` has its size and sha256.
  bool stored(const Json& shard);
  // RunDirHooks::committed: takes the commit; waits while the staged bytes exceed max_staged; rethrows a
  // failed upload.
  void committed(const Json& manifest, const std::string& text);
  // Waits until everything committed is uploaded, the manifest last; rethrows a failed upload.
  void finish();

  struct Stats {
    int64_t shards = 0;         // uploaded and verified (this process), or found verified on resume
    int64_t bytes = 0;          // of those shards
    int64_t staged_bytes = 0;   // committed shards not yet uploaded
    double wait_seconds = 0;    // commits held back by max_staged
  };
  Stats stats() const;
  std::string url() const { return where_.url(); }

 private:
  void loop();
  void upload_round(const Json& manifest, const std::string& text);
  void journal(const std::string& key, const std::string& upload_id);

  UploadOptions o_;
  std::string dir_;
  storage::S3Location where_;
  std::unique_ptr<storage::S3Client> client_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Json latest_;              // the newest committed manifest
  std::string latest_text_;
  int64_t latest_gen_ = 0, done_gen_ = 0;
  std::set<std::string> seen_;      // shards counted as staged
  std::set<std::string> uploaded_;  // shards verified remote
  uint64_t samples_uploaded_ = uint64_t(-1);  // samples.jsonl bytes last uploaded
  Stats stats_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::map<std::string, std::string> open_uploads_;  // key -> multipart upload id (journaled)
  std::mutex journal_mu_;
  std::thread thread_;
};

}  // namespace fme

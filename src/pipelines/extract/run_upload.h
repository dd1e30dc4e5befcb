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
// again; multipart uploads a kill left open (journaled in DIR/.s3-uploads[.rank-R].json) are aborted; a remote
// run from other settings is refused.
//
// A run cut into work units (unit_run.h) is mirrored a directory at a time: each process sends the units it
// computes (`subdir` "units/unit-000003": its shards, samples.jsonl and manifest.json, in that order), and the
// run's own samples.jsonl and manifest.json (`with_shards` false: its shards are the units') are sent by the
// writer once the units they cover are published, i.e. their remote manifest is the local one (published()).
// One thread serves every directory, so staged bytes and backpressure are the process's.
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
  std::string journal = ".s3-uploads.json";  // in the run directory: this process's open multipart uploads
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
  // identity differs, or when it is there but the local directory has no run to continue. With
  // `abort_journaled`, aborts the multipart uploads a kill left open (every process's journal: one process
  // does this, before the others start). Then starts the upload thread; a plain run's committed state
  // (`local_run_exists`, not `units`) is sent first.
  void start(const Json& identity, bool resume, bool local_run_exists, bool units = false, bool abort_journaled = true);
  // RunDirHooks::stored_elsewhere: the object of `shard` (in `subdir`) has its size and sha256.
  bool stored(const Json& shard, const std::string& subdir = "");
  // RunDirHooks::committed: takes the commit of the directory `subdir` (relative to the run; "" the run's
  // own); waits while the staged bytes exceed max_staged; rethrows a failed upload. `with_shards` false: the
  // manifest's shards are uploaded by their own directories.
  void committed(const Json& manifest, const std::string& text, const std::string& subdir = "", bool with_shards = true);
  // Whether everything committed in `subdir` is uploaded, its manifest last; rethrows a failed upload.
  bool uploaded(const std::string& subdir);
  // Whether the remote manifest of `subdir` is `manifest_text` (so every object it lists is there, verified).
  bool published(const std::string& subdir, const std::string& manifest_text);
  // Waits until everything committed is uploaded, the manifests last; rethrows a failed upload.
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
  // One mirrored directory: its newest commit and how far its upload has got.
  struct Dir {
    Json latest;
    std::string text;
    bool with_shards = true;
    int64_t gen = 0, done = 0;
    uint64_t samples_uploaded = uint64_t(-1);  // samples.jsonl bytes last uploaded
  };
  std::string rel(const std::string& subdir, const std::string& name) const { return subdir.empty() ? name : subdir + "/" + name; }
  void loop();
  void upload_round(const std::string& subdir, const Json& manifest, const std::string& text, bool with_shards, uint64_t& samples_uploaded);
  void journal(const std::string& key, const std::string& upload_id);

  UploadOptions o_;
  std::string dir_;
  storage::S3Location where_;
  std::unique_ptr<storage::S3Client> client_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Dir> dirs_;  // by subdir
  std::set<std::string> seen_;       // shards counted as staged (names relative to the run)
  std::set<std::string> uploaded_;   // shards verified remote
  Stats stats_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::map<std::string, std::string> open_uploads_;  // key -> multipart upload id (journaled)
  std::mutex journal_mu_;
  std::thread thread_;
};

}  // namespace fme

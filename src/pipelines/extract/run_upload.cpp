#include "pipelines/extract/run_upload.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "pipelines/extract/run_dir.h"
#include "util/error.h"
#include "util/failpoint.h"
#include "util/file.h"

namespace fs = std::filesystem;

namespace fme {
namespace {
constexpr const char* kJournal = ".s3-uploads.json";  // multipart uploads in flight: key -> upload id

// The first `n` bytes of `path`.
std::string read_prefix(const std::string& path, uint64_t n) {
  std::ifstream in(path, std::ios::binary);
  std::string data(n, '\0');
  if (!in.read(data.data(), static_cast<std::streamsize>(n))) throw IoError(path + ": shorter than the " + std::to_string(n) + " bytes manifest.json records");
  return data;
}
}  // namespace

RunUpload::RunUpload(const UploadOptions& o, std::string local_dir)
    : o_(o), dir_(std::move(local_dir)), where_(storage::S3Location::parse(o.url, "--upload")) {
  if (o_.part_size < (uint64_t(5) << 20)) throw ConfigError("--part-size " + std::to_string(o_.part_size) + ": S3 needs parts of at least 5 MiB");
  if (o_.parallel < 1) throw ConfigError("--upload-parallel must be at least 1");
  client_ = std::make_unique<storage::S3Client>(storage::S3Config::from_environment(o_.endpoint));
  client_->check_bucket(where_.bucket);
}

RunUpload::~RunUpload() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RunUpload::start(const Json& identity, bool resume, bool local_run_exists) {
  const std::string manifest_key = where_.key("manifest.json");
  std::string remote;
  try {
    remote = client_->get(where_.bucket, manifest_key);
  } catch (const storage::S3Error& e) {
    if (e.http_status != 404) throw;
  }
  const std::string at = "s3://" + where_.bucket + "/" + manifest_key;
  if (!remote.empty()) {
    if (!resume) throw ConfigError(at + ": a run is already there; --resume continues it (from its local directory), or give another prefix");
    if (!local_run_exists)
      throw ConfigError(at + ": a run is there but " + dir_ + " holds none to continue from; copy the run down first (any S3 tool), or give another prefix");
    const Json m = parse_json(remote, at);
    const auto diff = differences(m.value("identity", Json::object()), identity);
    if (!diff.empty()) {
      std::string msg;
      for (size_t i = 0; i < diff.size() && i < 6; ++i) msg += (i ? "; " : "") + diff[i];
      throw ConfigError(at + ": the run there was made with other settings: " + msg);
    }
  }
  // Multipart uploads a kill left open: abort them (S3 keeps, and bills, their parts otherwise).
  const std::string journal_path = (fs::path(dir_) / kJournal).string();
  if (fs::exists(journal_path)) {
    const Json open = read_json_file(journal_path);
    for (const auto& [key, id] : open.items()) {
      try {
        client_->abort_upload(where_.bucket, key, id.get<std::string>());
      } catch (const storage::S3Error& e) {
        std::cerr << "fme extract: warning: could not abort the unfinished upload of s3://" << where_.bucket << "/" << key << " ("
                  << e.what() << "); the store keeps its parts until a lifecycle rule removes them\n";
      }
    }
    fs::remove(journal_path);
  }
  // What the local run has committed goes up first (a resume after a kill between commit and upload).
  if (local_run_exists) {
    const std::string local_manifest = (fs::path(dir_) / "manifest.json").string();
    const std::string text = read_file(local_manifest);
    committed(parse_json(text, local_manifest), text);
  }
  thread_ = std::thread([this] { loop(); });
}

bool RunUpload::stored(const Json& shard) {
  const std::string name = shard.at("file").get<std::string>();
  const storage::S3Object o = client_->head(where_.bucket, where_.key(name));
  const auto sha = o.meta.find("sha256");
  const bool whole = o.exists && o.size == shard.at("bytes").get<uint64_t>() && sha != o.meta.end() &&
                     sha->second == shard.at("sha256").get<std::string>();
  if (whole) {
    std::lock_guard<std::mutex> lock(mu_);
    if (uploaded_.insert(name).second) {
      ++stats_.shards;
      stats_.bytes += static_cast<int64_t>(o.size);
    }
  }
  return whole;
}

void RunUpload::committed(const Json& manifest, const std::string& text) {
  std::unique_lock<std::mutex> lock(mu_);
  if (error_) std::rethrow_exception(error_);
  latest_ = manifest;
  latest_text_ = text;
  ++latest_gen_;
  for (const auto& s : manifest.at("shards")) {
    const std::string name = s.at("file").get<std::string>();
    if (seen_.insert(name).second && !uploaded_.count(name)) stats_.staged_bytes += s.at("bytes").get<int64_t>();
  }
  cv_.notify_all();
  // Backpressure: compute waits while too many committed bytes are not uploaded yet.
  if (stats_.staged_bytes > static_cast<int64_t>(o_.max_staged) && thread_.joinable()) {
    const auto t0 = std::chrono::steady_clock::now();
    cv_.wait(lock, [&] { return error_ || stop_ || stats_.staged_bytes <= static_cast<int64_t>(o_.max_staged); });
    stats_.wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (error_) std::rethrow_exception(error_);
}

void RunUpload::finish() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return error_ || done_gen_ == latest_gen_; });
  if (error_) std::rethrow_exception(error_);
}

RunUpload::Stats RunUpload::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void RunUpload::loop() {
  while (true) {
    Json manifest;
    std::string text;
    int64_t gen = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || latest_gen_ > done_gen_; });
      if (stop_) return;
      manifest = latest_;  // commits that came meanwhile are taken together
      text = latest_text_;
      gen = latest_gen_;
    }
    try {
      upload_round(manifest, text);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    done_gen_ = gen;
    cv_.notify_all();
  }
}

void RunUpload::journal(const std::string& key, const std::string& upload_id) {
  std::lock_guard<std::mutex> lock(journal_mu_);
  if (upload_id.empty()) open_uploads_.erase(key);
  else open_uploads_[key] = upload_id;
  const std::string path = (fs::path(dir_) / kJournal).string();
  if (open_uploads_.empty()) {
    std::error_code ec;
    fs::remove(path, ec);
  } else {
    write_file_atomic(path, Json(open_uploads_).dump() + "\n");
  }
}

void RunUpload::upload_round(const Json& manifest, const std::string& text) {
  for (const auto& s : manifest.at("shards")) {
    const std::string name = s.at("file").get<std::string>();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (uploaded_.count(name)) continue;
    }
    const std::string path = (fs::path(dir_) / name).string();
    const int64_t bytes = s.at("bytes").get<int64_t>();
    if (!fs::exists(path)) {
      if (stored(s)) {
        std::lock_guard<std::mutex> lock(mu_);
        stats_.staged_bytes -= bytes;
        cv_.notify_all();
        continue;
      }
      throw IoError(path + ": missing locally, and " + where_.url() + "/" + name + " is not its verified copy");
    }
    const std::string key = where_.key(name);
    client_->put_file(where_.bucket, key, path, o_.part_size, o_.parallel, {{"sha256", s.at("sha256").get<std::string>()}},
                      [](uint64_t) { failpoint("extract.upload.part_sent"); }, [&](const std::string& id) { journal(key, id); });
    {
      std::lock_guard<std::mutex> lock(mu_);
      uploaded_.insert(name);
      ++stats_.shards;
      stats_.bytes += bytes;
      stats_.staged_bytes -= bytes;
      cv_.notify_all();
    }
    if (o_.delete_local) fs::remove(path);  // verified above (put_file checks every part and the size)
    failpoint("extract.upload.shard_uploaded");
  }
  // samples.jsonl: the prefix the manifest records (later commits may have appended more already).
  const uint64_t samples_bytes = manifest.value("samples_jsonl_bytes", uint64_t(0));
  const fs::path samples = fs::path(dir_) / "samples.jsonl";
  if (samples_bytes != samples_uploaded_ && fs::exists(samples)) {
    const std::string key = where_.key("samples.jsonl");
    if (samples_bytes <= o_.part_size) {
      client_->put(where_.bucket, key, read_prefix(samples.string(), samples_bytes));
    } else {  // a long run's: sent from a copy of the prefix, in parts
      const std::string copy = (fs::path(dir_) / (".samples.jsonl.upload.tmp." + std::to_string(::getpid()))).string();
      write_file_atomic(copy, read_prefix(samples.string(), samples_bytes));
      try {
        client_->put_file(where_.bucket, key, copy, o_.part_size, o_.parallel, {}, {}, [&](const std::string& id) { journal(key, id); });
      } catch (...) {
        fs::remove(copy);
        throw;
      }
      fs::remove(copy);
    }
    samples_uploaded_ = samples_bytes;
  }
  client_->put(where_.bucket, where_.key("manifest.json"), text);  // last: it lists only verified shards
}

}  // namespace fme

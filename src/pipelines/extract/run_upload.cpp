#include "pipelines/extract/run_upload.h"

#include <unistd.h>

#include <algorithm>
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

void RunUpload::start(const Json& identity, bool resume, bool local_run_exists, bool units, bool abort_journaled) {
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
  // Multipart uploads a kill left open, journaled by any process of the last launch: abort them (S3 keeps,
  // and bills, their parts otherwise).
  std::error_code ec;
  if (abort_journaled && fs::is_directory(dir_, ec)) {
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(".s3-uploads", 0) != 0 || name.size() < 5 || name.compare(name.size() - 5, 5, ".json") != 0) continue;
      const Json open = read_json_file(e.path().string());
      for (const auto& [key, id] : open.items()) {
        try {
          client_->abort_upload(where_.bucket, key, id.get<std::string>());
        } catch (const storage::S3Error& err) {
          std::cerr << "fme extract: warning: could not abort the unfinished upload of s3://" << where_.bucket << "/" << key << " ("
                    << err.what() << "); the store keeps its parts until a lifecycle rule removes them\n";
        }
      }
      fs::remove(e.path(), ec);
    }
  }
  // What the local run has committed goes up first (a resume after a kill between commit and upload). A unit
  // run's directories are sent as they are opened, and its own files by the writer.
  if (local_run_exists && !units) {
    const std::string local_manifest = (fs::path(dir_) / "manifest.json").string();
    const std::string text = read_file(local_manifest);
    committed(parse_json(text, local_manifest), text);
  }
  thread_ = std::thread([this] { loop(); });
}

bool RunUpload::stored(const Json& shard, const std::string& subdir) {
  const std::string name = rel(subdir, shard.at("file").get<std::string>());
  const storage::S3Object o = client_->head(where_.bucket, where_.key(name));
  const auto sha = o.meta.find("sha256");
  const bool whole = o.exists && o.size == shard.at("bytes").get<uint64_t>() && sha != o.meta.end() &&
                     sha->second == shard.at("sha256").get<std::string>();
  if (whole) {
    std::lock_guard<std::mutex> lock(mu_);
    if (uploaded_.insert(name).second) {
      ++stats_.shards;
      stats_.bytes += static_cast<int64_t>(o.size);
      if (seen_.count(name)) stats_.staged_bytes -= static_cast<int64_t>(o.size);
      cv_.notify_all();
    }
  }
  return whole;
}

void RunUpload::committed(const Json& manifest, const std::string& text, const std::string& subdir, bool with_shards) {
  std::unique_lock<std::mutex> lock(mu_);
  if (error_) std::rethrow_exception(error_);
  Dir& d = dirs_[subdir];
  d.latest = manifest;
  d.text = text;
  d.with_shards = with_shards;
  ++d.gen;
  if (with_shards)
    for (const auto& s : manifest.at("shards")) {
      const std::string name = rel(subdir, s.at("file").get<std::string>());
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

bool RunUpload::uploaded(const std::string& subdir) {
  std::lock_guard<std::mutex> lock(mu_);
  if (error_) std::rethrow_exception(error_);
  const auto it = dirs_.find(subdir);
  return it != dirs_.end() && it->second.done == it->second.gen;
}

bool RunUpload::published(const std::string& subdir, const std::string& manifest_text) {
  try {
    return client_->get(where_.bucket, where_.key(rel(subdir, "manifest.json"))) == manifest_text;
  } catch (const storage::S3Error& e) {
    if (e.http_status == 404) return false;
    throw;
  }
}

void RunUpload::finish() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] {
    if (error_) return true;
    for (const auto& [name, d] : dirs_)
      if (d.done != d.gen) return false;
    return true;
  });
  if (error_) std::rethrow_exception(error_);
}

RunUpload::Stats RunUpload::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void RunUpload::loop() {
  while (true) {
    std::string subdir;
    Json manifest;
    std::string text;
    bool with_shards = true;
    int64_t gen = 0;
    uint64_t samples_uploaded = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto pending = [&] {
        return std::find_if(dirs_.begin(), dirs_.end(), [](const auto& d) { return d.second.gen > d.second.done; });
      };
      cv_.wait(lock, [&] { return stop_ || pending() != dirs_.end(); });
      if (stop_) return;
      const auto& [name, d] = *pending();
      subdir = name;
      manifest = d.latest;  // commits that came meanwhile are taken together
      text = d.text;
      with_shards = d.with_shards;
      gen = d.gen;
      samples_uploaded = d.samples_uploaded;
    }
    try {
      upload_round(subdir, manifest, text, with_shards, samples_uploaded);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    Dir& d = dirs_[subdir];
    d.done = gen;
    d.samples_uploaded = samples_uploaded;
    cv_.notify_all();
  }
}

void RunUpload::journal(const std::string& key, const std::string& upload_id) {
  std::lock_guard<std::mutex> lock(journal_mu_);
  if (upload_id.empty()) open_uploads_.erase(key);
  else open_uploads_[key] = upload_id;
  const std::string path = (fs::path(dir_) / o_.journal).string();
  if (open_uploads_.empty()) {
    std::error_code ec;
    fs::remove(path, ec);
  } else {
    write_file_atomic(path, Json(open_uploads_).dump() + "\n");
  }
}

void RunUpload::upload_round(const std::string& subdir, const Json& manifest, const std::string& text, bool with_shards,
                             uint64_t& samples_uploaded) {
  const fs::path local = subdir.empty() ? fs::path(dir_) : fs::path(dir_) / subdir;
  for (const auto& s : with_shards ? manifest.at("shards") : Json::array()) {
    const std::string name = rel(subdir, s.at("file").get<std::string>());
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (uploaded_.count(name)) continue;
    }
    // Already there, verified (a resume, or a unit taken over from a process that died): not sent again.
    if (stored(s, subdir)) continue;
    const std::string path = (local / s.at("file").get<std::string>()).string();
    const int64_t bytes = s.at("bytes").get<int64_t>();
    if (!fs::exists(path)) throw IoError(path + ": missing locally, and " + where_.url() + "/" + name + " is not its verified copy");
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
  const fs::path samples = local / "samples.jsonl";
  if (samples_bytes != samples_uploaded && fs::exists(samples)) {
    const std::string key = where_.key(rel(subdir, "samples.jsonl"));
    if (samples_bytes <= o_.part_size) {
      client_->put(where_.bucket, key, read_prefix(samples.string(), samples_bytes));
    } else {  // a long run's: sent from a copy of the prefix, in parts
      const std::string copy = (local / (".samples.jsonl.upload.tmp." + std::to_string(::getpid()))).string();
      write_file_atomic(copy, read_prefix(samples.string(), samples_bytes));
      try {
        client_->put_file(where_.bucket, key, copy, o_.part_size, o_.parallel, {}, {}, [&](const std::string& id) { journal(key, id); });
      } catch (...) {
        fs::remove(copy);
        throw;
      }
      fs::remove(copy);
    }
    samples_uploaded = samples_bytes;
  }
  client_->put(where_.bucket, where_.key(rel(subdir, "manifest.json")), text);  // last: it lists only verified shards
}

}  // namespace fme

#include "pipelines/extract/run_dir.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>

#include "models/tensor_io.h"
#include "util/compress.h"
#include "util/error.h"
#include "util/failpoint.h"
#include "util/file.h"
#include "util/sha256.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

constexpr const char* kFormat = "fme-activations";

std::string shard_name(int64_t n, bool zstd) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "shard-%05lld.safetensors%s", static_cast<long long>(n), zstd ? ".zst" : "");
  return buf;
}

}  // namespace

// The keys of `a` and `b` (objects) whose values differ, as "key: old -> new".
std::vector<std::string> differences(const Json& a, const Json& b, const std::string& prefix) {
  std::vector<std::string> out;
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (auto it = a.begin(); it != a.end(); ++it) keys.insert(it.key());
    for (auto it = b.begin(); it != b.end(); ++it) keys.insert(it.key());
    for (const auto& k : keys) {
      Json x = a.contains(k) ? a[k] : Json(), y = b.contains(k) ? b[k] : Json();
      auto sub = differences(x, y, prefix + k + ".");
      out.insert(out.end(), sub.begin(), sub.end());
    }
  } else if (a != b) {
    out.push_back(prefix.substr(0, prefix.size() - 1) + ": " + a.dump() + " -> " + b.dump());
  }
  return out;
}

namespace {

}  // namespace

Json recorded_run_settings(const std::string& dir) {
  std::error_code ec;
  const fs::path manifest = fs::path(dir) / "manifest.json";
  if (!fs::exists(manifest, ec)) return Json::object();
  try {
    Json m = read_json_file(manifest.string());
    if (m.is_object() && m.contains("identity") && m["identity"].is_object() && m["identity"].contains("settings") &&
        m["identity"]["settings"].is_object())
      return m["identity"]["settings"];
  } catch (const Error&) {
    // RunDir reports a damaged manifest itself, with the file's name.
  }
  return Json::object();
}

RunDir::RunDir(std::string dir, Json identity, Json info, std::vector<HookPoint> points, at::ScalarType store,
               uint64_t shard_size, bool zstd, bool resume, RunDirHooks hooks, int64_t first_sample)
    : dir_(std::move(dir)), hooks_(std::move(hooks)), identity_(std::move(identity)), info_(std::move(info)), points_(std::move(points)),
      store_(store), shard_size_(shard_size), zstd_(zstd), next_sample_(first_sample), next_expected_(first_sample) {
  for (const auto& p : points_) {
    int64_t numel = 1;
    for (int64_t d : p.row_shape) numel *= d;
    stats_.push_back({0, at::zeros({numel}, at::kDouble), 0});
    pending_stats_.push_back({0, at::zeros({numel}, at::kDouble), 0});
  }
  std::error_code ec;
  const fs::path manifest = fs::path(dir_) / "manifest.json";
  // A run killed before its first manifest landed leaves only temp files: that is an empty run.
  if (resume && fs::is_directory(dir_, ec) && !fs::exists(manifest, ec)) {
    bool only_temps = true;
    for (const auto& e : fs::directory_iterator(dir_)) only_temps = only_temps && e.path().filename().string().find(".tmp.") != std::string::npos;
    if (only_temps)
      for (const auto& e : fs::directory_iterator(dir_)) fs::remove(e.path(), ec);
  }
  const bool nonempty = fs::exists(dir_, ec) && !fs::is_empty(dir_, ec);
  if (!resume) {
    if (nonempty) throw ConfigError(dir_ + ": output directory is not empty; use --resume to continue the run there");
    fs::create_directories(dir_, ec);
    if (ec) throw IoError(dir_ + ": cannot create output directory: " + ec.message());
    write_manifest();  // an empty, consistent run from the start
    return;
  }
  if (!fs::exists(manifest, ec)) {
    if (nonempty) throw ConfigError(dir_ + ": --resume, but there is no manifest.json: not an fme extract run");
    fs::create_directories(dir_, ec);
    if (ec) throw IoError(dir_ + ": cannot create output directory: " + ec.message());
    write_manifest();
    return;
  }
  Json m = read_json_file(manifest.string());
  if (m.value("format", "") != kFormat) throw FormatError(manifest.string() + ": not an fme activations manifest");
  const int version = m.value("version", 0);
  if (version != kRunFormatVersion)
    throw ConfigError(manifest.string() + ": the run there was written in format version " + std::to_string(version) +
                      ", and this fme resumes only version " + std::to_string(kRunFormatVersion) +
                      " runs (version 1 stored resid_post.{i}, version 2 hook points by name); its shards still read "
                      "(examples/read_shards.py reads both): start a new run in another directory");
  auto diff = differences(m.value("identity", Json::object()), identity_);
  if (!diff.empty()) {
    std::string msg;
    for (size_t i = 0; i < diff.size() && i < 6; ++i) msg += (i ? "; " : "") + diff[i];
    for (const auto& d : diff)
      if (d.rfind("settings.chat: null", 0) == 0)
        msg += " (the run wrapped ARC prompts in the prompt template's own chat text: resume it with --chat template)";
    throw ConfigError(dir_ + ": --resume with different settings than the run there: " + msg);
  }
  shards_ = m.at("shards");
  const Json& t = m.at("totals");
  totals_ = {t.at("samples"), t.at("stored_samples"), t.at("tokens"), t.at("bytes"), t.at("shards"),
             t.at("truncated"), t.at("skipped"), t.value("excluded_tokens", int64_t{0})};
  const Json& stats = m.at("stats");
  for (size_t l = 0; l < points_.size(); ++l) {
    const Json& s = stats.at(points_[l].name);
    const std::vector<double> sum = s.at("sum").get<std::vector<double>>();
    if (static_cast<int64_t>(sum.size()) != stats_[l].sum.numel())
      throw FormatError(manifest.string() + ": stats." + points_[l].name + ".sum has " + std::to_string(sum.size()) +
                        " entries, expected " + std::to_string(stats_[l].sum.numel()));
    std::copy(sum.begin(), sum.end(), stats_[l].sum.data_ptr<double>());
    stats_[l].rows = s.at("rows");
    stats_[l].sum_sq_norm = s.at("sum_sq_norm");
  }
  next_sample_ = next_expected_ = m.at("next_sample");
  samples_jsonl_bytes_ = m.at("samples_jsonl_bytes");
  complete_ = m.at("complete");
  recover();
}

// Removes what a killed run left past the manifest: unlisted shard files, temp files, extra samples.jsonl lines.
void RunDir::recover() {
  std::set<std::string> listed{"manifest.json", "samples.jsonl"};
  for (const auto& s : shards_) listed.insert(s.at("file").get<std::string>());
  for (const auto& e : fs::directory_iterator(dir_)) {
    const std::string name = e.path().filename().string();
    if (listed.count(name)) continue;
    if (name.rfind("shard-", 0) == 0 || name.find(".tmp.") != std::string::npos) fs::remove(e.path());
  }
  const fs::path samples = fs::path(dir_) / "samples.jsonl";
  std::error_code ec;
  const uint64_t size = fs::exists(samples, ec) ? fs::file_size(samples) : 0;
  if (size < samples_jsonl_bytes_) throw FormatError(samples.string() + ": shorter than manifest.json records; the run is damaged");
  if (size > samples_jsonl_bytes_) fs::resize_file(samples, samples_jsonl_bytes_);
  for (const auto& s : shards_) {
    const fs::path p = fs::path(dir_) / s.at("file").get<std::string>();
    if (!fs::exists(p, ec) && hooks_.stored_elsewhere && hooks_.stored_elsewhere(s)) continue;  // uploaded, then removed
    if (!fs::exists(p, ec) || fs::file_size(p) != s.at("bytes").get<uint64_t>())
      throw FormatError(p.string() + ": missing or of the wrong size; manifest.json lists it");
  }
}

void RunDir::add(SampleResult&& r) {
  if (r.rec.index != next_expected_)
    throw Error("extract: internal ordering error: got sample " + std::to_string(r.rec.index) + ", expected " +
                std::to_string(next_expected_));
  ++next_expected_;
  pending_lines_ += r.rec.to_json().dump() + "\n";
  ++totals_.samples;
  if (r.rec.truncated) ++totals_.truncated;
  if (!r.rec.skipped.empty()) {
    ++totals_.skipped;
    return;
  }
  if (r.points.size() != points_.size()) throw Error("extract: internal error: a sample without every hook point");
  totals_.excluded_tokens += r.rec.excluded;
  for (size_t l = 0; l < points_.size(); ++l) {
    const at::Tensor& t = r.points[l];  // [n, row...] as stored
    pending_bytes_ += t.numel() * t.element_size();
    if (t.size(0) == 0) continue;
    at::Tensor x = t.to(at::kDouble).reshape({t.size(0), -1});  // [n, row numel]
    PointStats& s = pending_stats_[l];
    s.rows += t.size(0);
    s.sum += x.sum(0);
    s.sum_sq_norm += x.mul(x).sum().item<double>();
  }
  pending_bytes_ += r.ids.size() * 8 + 16;
  pending_.push_back(std::move(r));
  if (pending_bytes_ >= shard_size_) commit(false);
}

void RunDir::finish() {
  commit(true);
}

void RunDir::commit(bool final) {
  if (hooks_.before_commit) hooks_.before_commit();
  if (!pending_.empty()) {
    const int64_t S = static_cast<int64_t>(pending_.size());
    std::vector<int64_t> index(S), offsets(S + 1, 0);
    std::vector<int32_t> ids, positions;
    for (int64_t j = 0; j < S; ++j) {
      index[j] = pending_[j].rec.index;
      offsets[j + 1] = offsets[j] + static_cast<int64_t>(pending_[j].ids.size());
      ids.insert(ids.end(), pending_[j].ids.begin(), pending_[j].ids.end());
      positions.insert(positions.end(), pending_[j].positions.begin(), pending_[j].positions.end());
    }
    if (positions.size() != ids.size()) throw Error("extract: internal error: token positions do not match token ids");
    const int64_t N = offsets[S];
    // Each point's [N, row...] is the samples' rows one after another, written from the samples' own buffers.
    SafetensorsWriter w;
    for (size_t l = 0; l < points_.size(); ++l) {
      std::vector<std::pair<const void*, size_t>> rows;
      for (auto& r : pending_) rows.emplace_back(r.points[l].data_ptr(), r.points[l].numel() * r.points[l].element_size());
      std::vector<int64_t> shape{N};
      shape.insert(shape.end(), points_[l].row_shape.begin(), points_[l].row_shape.end());
      w.add_chunks(points_[l].name, to_dtype(store_), shape, std::move(rows));
    }
    w.add("token_ids", DType::I32, {N}, ids.data(), ids.size() * sizeof(int32_t));
    w.add("token_positions", DType::I32, {N}, positions.data(), positions.size() * sizeof(int32_t));
    w.add("sample_index", DType::I64, {S}, index.data(), index.size() * sizeof(int64_t));
    w.add("sample_offsets", DType::I64, {S + 1}, offsets.data(), offsets.size() * sizeof(int64_t));
    std::string hook_list;
    for (const auto& p : points_) hook_list += (hook_list.empty() ? "" : ",") + p.name;
    std::map<std::string, std::string> meta{{"format", kFormat},
                                            {"version", std::to_string(kRunFormatVersion)},
                                            {"model", info_.contains("model") ? info_["model"].value("path", "") : ""},
                                            {"hooks", hook_list},
                                            {"first_sample", std::to_string(index.front())},
                                            {"last_sample", std::to_string(index.back())}};
    const std::string name = shard_name(totals_.shards, zstd_);
    const std::string path = (fs::path(dir_) / name).string();
    for (const auto& [k, v] : meta) w.set_metadata(k, v);
    uint64_t bytes;
    std::string sha;
    if (zstd_) {
      const std::string raw = path + ".raw.tmp." + std::to_string(::getpid());
      w.write(raw);
      try {
        bytes = zstd_compress_file(raw, path);
      } catch (...) {
        fs::remove(raw);
        throw;
      }
      fs::remove(raw);
      sha = sha256_file(path);  // the file as stored: its compressed bytes
    } else {
      bytes = w.write(path, &sha);
    }
    shards_.push_back(Json{{"file", name},
                           {"first_sample", index.front()},
                           {"last_sample", index.back()},
                           {"samples", S},
                           {"tokens", N},
                           {"bytes", bytes},
                           {"sha256", sha}});
    totals_.stored_samples += S;
    totals_.tokens += N;
    totals_.bytes += static_cast<int64_t>(bytes);
    totals_.shards += 1;
    pending_.clear();
    pending_bytes_ = 0;
  }
  // The statistics describe exactly the committed shards: the shard's partial sums join them now.
  for (size_t l = 0; l < points_.size(); ++l) {
    stats_[l].rows += pending_stats_[l].rows;
    stats_[l].sum += pending_stats_[l].sum;
    stats_[l].sum_sq_norm += pending_stats_[l].sum_sq_norm;
    pending_stats_[l] = {0, at::zeros_like(pending_stats_[l].sum), 0};
  }
  if (!pending_lines_.empty()) {
    append_file_durably((fs::path(dir_) / "samples.jsonl").string(), pending_lines_);
    samples_jsonl_bytes_ += pending_lines_.size();
    pending_lines_.clear();
  }
  next_sample_ = next_expected_;
  if (final) complete_ = true;
  write_manifest();
  failpoint("extract.shard.committed");
}

void RunDir::write_manifest() {
  Json m{{"format", kFormat}, {"version", kRunFormatVersion}};
  for (auto it = info_.begin(); it != info_.end(); ++it) m[it.key()] = it.value();
  Json hooks = Json::array();
  for (const auto& p : points_) hooks.push_back({{"name", p.name}, {"row_shape", p.row_shape}, {"dtype", std::string(dtype_name(to_dtype(store_)))}});
  m["hooks"] = hooks;
  Json stats = Json::object();
  for (size_t l = 0; l < points_.size(); ++l) {
    const PointStats& s = stats_[l];
    const double* sum = s.sum.data_ptr<double>();
    const int64_t n = s.sum.numel();
    std::vector<double> mean(n, 0.0);
    if (s.rows > 0)
      for (int64_t i = 0; i < n; ++i) mean[i] = sum[i] / double(s.rows);
    stats[points_[l].name] = {{"rows", s.rows},
                              {"mean", mean},
                              {"mean_sq_norm", s.rows > 0 ? s.sum_sq_norm / double(s.rows) : 0.0},
                              {"sum", std::vector<double>(sum, sum + n)},  // exact fp64 accumulators, for --resume
                              {"sum_sq_norm", s.sum_sq_norm}};
  }
  m["stats"] = stats;
  m["identity"] = identity_;
  m["settings_hash"] = sha256_hex(identity_.dump());
  m["shards"] = shards_;
  m["totals"] = Json{{"samples", totals_.samples}, {"stored_samples", totals_.stored_samples}, {"tokens", totals_.tokens},
                     {"bytes", totals_.bytes},     {"shards", totals_.shards},                 {"truncated", totals_.truncated},
                     {"skipped", totals_.skipped}, {"excluded_tokens", totals_.excluded_tokens}};
  m["truncated"] = totals_.truncated;
  m["skipped"] = totals_.skipped;
  m["next_sample"] = next_sample_;
  m["samples_jsonl_bytes"] = samples_jsonl_bytes_;
  m["complete"] = complete_;
  const std::string text = m.dump(2) + "\n";
  write_file_atomic((fs::path(dir_) / "manifest.json").string(), text);
  if (hooks_.committed) hooks_.committed(m, text);
}

}  // namespace fme

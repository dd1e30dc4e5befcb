#include "pipelines/extract/unit_run.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <vector>

#include "util/error.h"
#include "util/file.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

// Appends `text` to `path` and fsyncs it.
void append_synced(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(path + ": cannot open for append");
  for (size_t off = 0; off < text.size();) {
    const ssize_t w = ::write(fd, text.data() + off, text.size() - off);
    if (w < 0) {
      ::close(fd);
      throw IoError(path + ": write failed (disk full?)");
    }
    off += static_cast<size_t>(w);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) throw IoError(path + ": fsync failed");
}

}  // namespace

UnitRun::UnitRun(std::string dir, Json identity, int64_t unit_samples, int64_t total_samples, bool resume, bool writer)
    : dir_(std::move(dir)), identity_(std::move(identity)), unit_samples_(unit_samples), total_(total_samples), writer_(writer) {
  if (unit_samples_ <= 0) throw ConfigError("--unit-samples must be positive");
  count_ = (total_ + unit_samples_ - 1) / unit_samples_;
  std::error_code ec;
  const fs::path manifest = fs::path(dir_) / "manifest.json";
  if (!writer_) {  // the writer checks the directory and owns RUN's files; the others only compare settings
    if (resume && fs::exists(manifest, ec)) {
      const auto diff = differences(read_json_file(manifest.string()).value("identity", Json::object()), identity_);
      if (!diff.empty()) throw ConfigError(dir_ + ": --resume with different settings than the run there: " + diff[0]);
    }
    return;
  }
  const bool nonempty = fs::exists(dir_, ec) && !fs::is_empty(dir_, ec);
  if (!resume && nonempty) throw ConfigError(dir_ + ": output directory is not empty; use --resume to continue the run there");
  if (resume && nonempty && !fs::exists(fs::path(dir_) / "units", ec))
    throw ConfigError(dir_ + ": --resume with --unit-samples, but the run there is not cut into units (no units/)");
  fs::create_directories(fs::path(dir_) / "units", ec);
  if (ec) throw IoError(dir_ + ": cannot create output directory: " + ec.message());
  if (!fs::exists(manifest, ec)) {
    fs::remove(fs::path(dir_) / "samples.jsonl", ec);  // lines of a first commit a kill cut short
    return;
  }
  const Json m = read_json_file(manifest.string());
  const auto diff = differences(m.value("identity", Json::object()), identity_);
  if (!diff.empty()) {
    std::string msg;
    for (size_t i = 0; i < diff.size() && i < 6; ++i) msg += (i ? "; " : "") + diff[i];
    throw ConfigError(dir_ + ": --resume with different settings than the run there: " + msg);
  }
  prefix_ = m.at("units").at("prefix").get<int64_t>();
  samples_jsonl_bytes_ = m.at("samples_jsonl_bytes").get<uint64_t>();
  const fs::path samples = fs::path(dir_) / "samples.jsonl";
  const uint64_t size = fs::exists(samples, ec) ? fs::file_size(samples) : 0;
  if (size < samples_jsonl_bytes_) throw FormatError(samples.string() + ": shorter than manifest.json records; the run is damaged");
  if (size > samples_jsonl_bytes_) fs::resize_file(samples, samples_jsonl_bytes_);  // lines past the last commit
}

int64_t UnitRun::end(int64_t unit) const { return std::min(total_, (unit + 1) * unit_samples_); }

std::string UnitRun::unit_dir(int64_t unit) const {
  char name[32];
  std::snprintf(name, sizeof name, "unit-%06lld", static_cast<long long>(unit));
  return (fs::path(dir_) / "units" / name).string();
}

Json UnitRun::unit_manifest(int64_t unit) const { return read_json_file((fs::path(unit_dir(unit)) / "manifest.json").string()); }

bool UnitRun::started(int64_t unit) const {
  std::error_code ec;
  return fs::exists(fs::path(unit_dir(unit)) / "manifest.json", ec);
}

bool UnitRun::complete(int64_t unit) const { return started(unit) && unit_manifest(unit).value("complete", false); }

RunTotals UnitRun::computed_except(int64_t unit) const {
  RunTotals t;
  for (int64_t u = 0; u < count_; ++u) {
    if (u == unit || !started(u)) continue;
    const Json m = unit_manifest(u).at("totals");
    t.samples += m.at("samples").get<int64_t>();
    t.stored_samples += m.at("stored_samples").get<int64_t>();
    t.tokens += m.at("tokens").get<int64_t>();
    t.bytes += m.at("bytes").get<int64_t>();
    t.shards += m.at("shards").get<int64_t>();
    t.truncated += m.at("truncated").get<int64_t>();
    t.skipped += m.at("skipped").get<int64_t>();
    t.excluded_tokens += m.value("excluded_tokens", int64_t{0});
  }
  return t;
}

bool UnitRun::commit() {
  if (!writer_) {
    for (int64_t u = 0; u < count_; ++u)
      if (!complete(u)) return false;
    return true;
  }
  // The prefix grows over the units completed since; their samples.jsonl lines are appended first, so the
  // manifest written after them never points past what is on disk.
  int64_t prefix = prefix_;
  std::string lines;
  while (prefix < count_ && complete(prefix)) {
    lines += read_file((fs::path(unit_dir(prefix)) / "samples.jsonl").string());
    ++prefix;
  }
  const fs::path samples = fs::path(dir_) / "samples.jsonl";
  if (!lines.empty()) append_synced(samples.string(), lines);
  samples_jsonl_bytes_ += lines.size();
  prefix_ = prefix;
  if (prefix_ == 0 && !started(0)) return count_ == 0;  // nothing to describe yet

  // The plain run layout over units [0, prefix): the first unit's manifest gives the fields every unit shares.
  Json m = unit_manifest(0);
  Json shards = Json::array();
  Json totals = Json{{"samples", 0}, {"stored_samples", 0}, {"tokens", 0}, {"bytes", 0}, {"shards", 0},
                     {"truncated", 0}, {"skipped", 0}, {"excluded_tokens", 0}};
  Json stats = Json::object();
  std::vector<int64_t> complete_units;
  for (int64_t u = 0; u < count_; ++u)
    if (complete(u)) complete_units.push_back(u);
  for (int64_t u = 0; u < prefix_; ++u) {
    const Json um = unit_manifest(u);
    const std::string rel = fs::path(unit_dir(u)).lexically_relative(dir_).string();
    const Json& unit = um.contains("unit") ? um.at("unit") : Json::object();
    for (Json s : um.at("shards")) {
      s["file"] = rel + "/" + s.at("file").get<std::string>();
      s["unit"] = u;
      s["rank"] = unit.value("rank", 0);  // the process that wrote the unit (last, if it was taken over)
      shards.push_back(s);
    }
    for (auto it = totals.begin(); it != totals.end(); ++it)
      it.value() = it.value().get<int64_t>() + um.at("totals").value(it.key(), int64_t{0});
    for (const auto& [point, st] : um.at("stats").items()) {
      if (!stats.contains(point)) {
        stats[point] = st;
        continue;
      }
      Json& acc = stats[point];
      std::vector<double> sum = acc.at("sum").get<std::vector<double>>();
      const std::vector<double> add = st.at("sum").get<std::vector<double>>();
      for (size_t i = 0; i < sum.size() && i < add.size(); ++i) sum[i] += add[i];
      acc["sum"] = sum;
      acc["rows"] = acc.at("rows").get<int64_t>() + st.at("rows").get<int64_t>();
      acc["sum_sq_norm"] = acc.at("sum_sq_norm").get<double>() + st.at("sum_sq_norm").get<double>();
    }
  }
  for (auto& [point, acc] : stats.items()) {  // means over the prefix's rows
    const int64_t rows = acc.at("rows").get<int64_t>();
    std::vector<double> mean = acc.at("sum").get<std::vector<double>>();
    for (double& v : mean) v = rows > 0 ? v / double(rows) : 0.0;
    acc["mean"] = mean;
    acc["mean_sq_norm"] = rows > 0 ? acc.at("sum_sq_norm").get<double>() / double(rows) : 0.0;
  }
  if (prefix_ == 0)  // no complete unit: empty statistics of the right shapes
    for (auto& [point, acc] : stats.items()) {
      const size_t n = acc.at("sum").size();
      acc = Json{{"rows", 0}, {"mean", std::vector<double>(n, 0.0)}, {"mean_sq_norm", 0.0}, {"sum", std::vector<double>(n, 0.0)},
                 {"sum_sq_norm", 0.0}};
    }
  m["identity"] = identity_;
  m["shards"] = shards;
  m["totals"] = totals;
  m["stats"] = stats;
  m["truncated"] = totals.at("truncated");
  m["skipped"] = totals.at("skipped");
  m["next_sample"] = prefix_ > 0 ? end(prefix_ - 1) : 0;
  m["samples_jsonl_bytes"] = samples_jsonl_bytes_;
  m["complete"] = prefix_ == count_;
  m["units"] = Json{{"samples", unit_samples_}, {"count", count_}, {"prefix", prefix_}, {"complete", complete_units}};
  m.erase("unit");
  write_file_atomic((fs::path(dir_) / "manifest.json").string(), m.dump(2) + "\n");
  return prefix_ == count_;
}

}  // namespace fme

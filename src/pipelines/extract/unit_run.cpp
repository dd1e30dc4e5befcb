#include "pipelines/extract/unit_run.h"

#include <cstdio>
#include <filesystem>
#include <vector>

#include "util/error.h"
#include "util/file.h"

namespace fs = std::filesystem;

namespace fme {

UnitRun::UnitRun(std::string dir, Json identity, int64_t unit_samples, int64_t total_samples, bool resume, bool writer,
                 UnitRunHooks hooks)
    : dir_(std::move(dir)), identity_(std::move(identity)), unit_samples_(unit_samples), total_(total_samples), writer_(writer),
      hooks_(std::move(hooks)) {
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
  prefix_shards_ = m.at("shards");
  const Json& t = m.at("totals");
  prefix_totals_ = {t.at("samples"), t.at("stored_samples"), t.at("tokens"), t.at("bytes"), t.at("shards"),
                    t.at("truncated"), t.at("skipped"), t.value("excluded_tokens", int64_t{0})};
  for (const auto& [point, st] : m.at("stats").items())
    prefix_stats_[point] = {st.at("rows").get<int64_t>(), st.at("sum").get<std::vector<double>>(), st.at("sum_sq_norm").get<double>()};
  template_ = m;
  const fs::path samples = fs::path(dir_) / "samples.jsonl";
  const uint64_t size = fs::exists(samples, ec) ? fs::file_size(samples) : 0;
  if (size < samples_jsonl_bytes_) throw FormatError(samples.string() + ": shorter than manifest.json records; the run is damaged");
  if (size > samples_jsonl_bytes_) fs::resize_file(samples, samples_jsonl_bytes_);  // lines past the last commit
}

int64_t UnitRun::end(int64_t unit) const { return std::min(total_, (unit + 1) * unit_samples_); }

std::string UnitRun::unit_name(int64_t unit) const {
  char name[32];
  std::snprintf(name, sizeof name, "units/unit-%06lld", static_cast<long long>(unit));
  return name;
}

std::string UnitRun::unit_dir(int64_t unit) const { return (fs::path(dir_) / unit_name(unit)).string(); }

Json UnitRun::unit_manifest(int64_t unit) const { return read_json_file((fs::path(unit_dir(unit)) / "manifest.json").string()); }

bool UnitRun::started(int64_t unit) const {
  std::error_code ec;
  return fs::exists(fs::path(unit_dir(unit)) / "manifest.json", ec);
}

namespace {
RunTotals totals_of(const Json& t) {
  return {t.at("samples"), t.at("stored_samples"), t.at("tokens"), t.at("bytes"), t.at("shards"),
          t.at("truncated"), t.at("skipped"), t.value("excluded_tokens", int64_t{0})};
}
}  // namespace

const UnitRun::Done* UnitRun::done(int64_t unit) const {
  auto it = done_.find(unit);
  if (it != done_.end()) return &it->second;
  if (!started(unit)) return nullptr;
  const std::string path = (fs::path(unit_dir(unit)) / "manifest.json").string();
  const std::string text = read_file(path);
  const Json m = parse_json(text, path);
  if (!m.value("complete", false)) return nullptr;
  if (hooks_.published && !hooks_.published(unit_name(unit), text)) return nullptr;
  Done d;
  d.totals = totals_of(m.at("totals"));
  const std::string rel = unit_name(unit);
  const Json& info = m.contains("unit") ? m.at("unit") : Json::object();
  d.shards = Json::array();
  for (Json s : m.at("shards")) {
    s["file"] = rel + "/" + s.at("file").get<std::string>();
    s["unit"] = unit;
    s["rank"] = info.value("rank", 0);  // the process that wrote the unit (last, if it was taken over)
    d.shards.push_back(s);
  }
  if (unit >= prefix_)
    for (const auto& [point, st] : m.at("stats").items())
      d.stats[point] = {st.at("rows").get<int64_t>(), st.at("sum").get<std::vector<double>>(), st.at("sum_sq_norm").get<double>()};
  if (template_.is_null()) {
    template_ = m;
    template_.erase("stats");
    template_.erase("shards");
    template_.erase("unit");
  }
  return &done_.emplace(unit, std::move(d)).first->second;
}

bool UnitRun::complete(int64_t unit) const { return done(unit) != nullptr; }

RunTotals UnitRun::computed_except(int64_t unit) const {
  RunTotals t;
  for (int64_t u = 0; u < count_; ++u) {
    if (u == unit) continue;
    if (const Done* d = done(u)) {
      t += d->totals;
    } else if (started(u)) {  // in progress: what its manifest has committed
      t += totals_of(unit_manifest(u).at("totals"));
    }
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
  std::string lines;
  for (; prefix_ < count_; ++prefix_) {
    Done* d = const_cast<Done*>(done(prefix_));
    if (!d) break;
    lines += read_file((fs::path(unit_dir(prefix_)) / "samples.jsonl").string());
    for (const auto& s : d->shards) prefix_shards_.push_back(s);
    prefix_totals_ += d->totals;
    for (auto& [point, st] : d->stats) {
      PointSums& acc = prefix_stats_[point];
      if (acc.sum.empty()) acc.sum.assign(st.sum.size(), 0.0);
      for (size_t i = 0; i < acc.sum.size() && i < st.sum.size(); ++i) acc.sum[i] += st.sum[i];
      acc.rows += st.rows;
      acc.sum_sq_norm += st.sum_sq_norm;
    }
    d->stats.clear();  // in the prefix's sums now
  }
  const fs::path samples = fs::path(dir_) / "samples.jsonl";
  if (!lines.empty()) append_file_durably(samples.string(), lines);
  samples_jsonl_bytes_ += lines.size();
  if (template_.is_null()) {  // no unit complete yet: the fields come from one that has started
    for (int64_t u = 0; u < count_ && template_.is_null(); ++u)
      if (started(u)) template_ = unit_manifest(u);
    if (template_.is_null()) return count_ == 0;  // nothing to describe yet
  }

  // The plain run layout over units [0, prefix).
  Json m = template_;
  m.erase("unit");
  Json stats = Json::object();
  for (const auto& h : m.at("hooks")) {  // every point, with empty statistics while the prefix has no row
    const std::string point = h.at("name").get<std::string>();
    int64_t numel = 1;
    for (const auto& d : h.at("row_shape")) numel *= d.get<int64_t>();
    const PointSums& acc = prefix_stats_[point];
    std::vector<double> sum = acc.sum.empty() ? std::vector<double>(static_cast<size_t>(numel), 0.0) : acc.sum;
    std::vector<double> mean = sum;
    for (double& v : mean) v = acc.rows > 0 ? v / double(acc.rows) : 0.0;
    stats[point] = Json{{"rows", acc.rows}, {"mean", mean}, {"mean_sq_norm", acc.rows > 0 ? acc.sum_sq_norm / double(acc.rows) : 0.0},
                        {"sum", sum}, {"sum_sq_norm", acc.sum_sq_norm}};
  }
  const RunTotals& t = prefix_totals_;
  std::vector<int64_t> complete_units;
  for (int64_t u = 0; u < count_; ++u)
    if (complete(u)) complete_units.push_back(u);
  m["identity"] = identity_;
  m["shards"] = prefix_shards_;
  m["totals"] = Json{{"samples", t.samples}, {"stored_samples", t.stored_samples}, {"tokens", t.tokens}, {"bytes", t.bytes},
                     {"shards", t.shards}, {"truncated", t.truncated}, {"skipped", t.skipped}, {"excluded_tokens", t.excluded_tokens}};
  m["stats"] = stats;
  m["truncated"] = t.truncated;
  m["skipped"] = t.skipped;
  m["next_sample"] = prefix_ > 0 ? end(prefix_ - 1) : 0;
  m["samples_jsonl_bytes"] = samples_jsonl_bytes_;
  m["complete"] = prefix_ == count_;
  m["units"] = Json{{"samples", unit_samples_}, {"count", count_}, {"prefix", prefix_}, {"complete", complete_units}};
  const std::string text = m.dump(2) + "\n";
  if (text == written_) return prefix_ == count_;  // nothing new (commit() is also called while waiting)
  written_ = text;
  write_file_atomic((fs::path(dir_) / "manifest.json").string(), text);
  if (hooks_.committed) hooks_.committed(m, text);
  return prefix_ == count_;
}

}  // namespace fme

#include "pipelines/train/train_checkpoint.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "models/tensor_io.h"
#include "util/error.h"
#include "util/failpoint.h"
#include "util/file.h"
#include "util/sha256.h"
#include "util/shape.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

constexpr const char* kFormat = "fme-train-checkpoint";
constexpr int kVersion = 1;

fs::path checkpoints_dir(const std::string& run_dir) { return fs::path(run_dir) / "checkpoints"; }

std::string step_name(int64_t step) {
  char b[32];
  std::snprintf(b, sizeof b, "step-%08lld", static_cast<long long>(step));
  return b;
}

// step-N directories of the run, newest first.
std::vector<std::pair<int64_t, fs::path>> step_dirs(const std::string& run_dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(checkpoints_dir(run_dir), ec)) {
    const std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("step-", 0) != 0 || n.size() != 13) continue;
    if (n.find_first_not_of("0123456789", 5) != std::string::npos) continue;
    out.emplace_back(std::stoll(n.substr(5)), e.path());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

// A checkpoint that is going away loses its index first: a kill mid-removal leaves one that is ignored.
void remove_checkpoint(const fs::path& dir) {
  std::error_code ec;
  fs::remove(dir / "index.json", ec);
  fs::remove_all(dir, ec);
}

std::string rank_file(const char* kind, int rank) {
  char b[64];
  std::snprintf(b, sizeof b, "%s.rank-%05d.safetensors", kind, rank);
  return b;
}

Json file_entry(const fs::path& path, const std::string& kind, int rank) {
  return Json{{"file", path.filename().string()}, {"kind", kind}, {"rank", rank},
              {"bytes", static_cast<uint64_t>(fs::file_size(path))}, {"sha256", sha256_file(path.string())}};
}

// Why the checkpoint in `dir` cannot be used ("" when it can), its index in `index`.
std::string validate(const fs::path& dir, Json& index) {
  const fs::path ip = dir / "index.json";
  if (!fs::exists(ip)) return "no index.json (its write was interrupted)";
  try {
    index = read_json_file(ip.string());
    if (index.value("format", "") != kFormat || index.value("version", 0) != kVersion)
      return ip.string() + ": not a " + std::string(kFormat) + " version " + std::to_string(kVersion) + " index";
    for (const auto& f : index.at("files")) {
      const fs::path p = dir / f.at("file").get<std::string>();
      if (!fs::exists(p)) return p.string() + ": missing (index.json lists it)";
      if (fs::file_size(p) != f.at("bytes").get<uint64_t>())
        return p.string() + ": " + std::to_string(fs::file_size(p)) + " bytes, index.json says " + f.at("bytes").dump();
      if (sha256_file(p.string()) != f.at("sha256").get<std::string>()) return p.string() + ": sha256 differs from index.json's";
    }
  } catch (const Json::exception& e) {
    return ip.string() + ": malformed (" + e.what() + ")";
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Copies each of `from` (a file's tensors) into the live tensor of the same name.
void copy_into(const std::string& file, const std::map<std::string, at::Tensor>& from, const NamedTensors& live) {
  std::set<std::string> expected;
  for (const auto& [name, t] : live) {
    expected.insert(name);
    auto it = from.find(name);
    if (it == from.end()) throw FormatError(file + ": tensor '" + name + "' missing (the run has it)");
    const at::Tensor& src = it->second;
    if (src.scalar_type() != t.scalar_type() || src.sizes() != t.sizes())
      throw FormatError(file + ": tensor '" + name + "' is " + std::string(c10::toString(src.scalar_type())) + " " +
                        shape_str(src.sizes()) + ", the run's is " + c10::toString(t.scalar_type()) + " " + shape_str(t.sizes()));
  }
  for (const auto& [name, t] : from)
    if (!expected.count(name)) throw FormatError(file + ": tensor '" + name + "' is not in the run being resumed");
  at::NoGradGuard no_grad;
  for (const auto& [name, t] : live) t.copy_(from.at(name));
}

}  // namespace

void begin_train_checkpoint(const std::string& run_dir, int64_t step) {
  const fs::path dir = checkpoints_dir(run_dir) / step_name(step);
  remove_checkpoint(dir);  // what an interrupted write of this step left
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(dir.string() + ": cannot create directory: " + ec.message());
}

void write_checkpoint_files(const std::string& run_dir, int64_t step, int rank, const NamedTensors& params,
                            const NamedTensors& optimizer_state) {
  const fs::path dir = checkpoints_dir(run_dir) / step_name(step);
  write_safetensors((dir / rank_file("model", rank)).string(), params, {{"format", "pt"}});
  failpoint("train.checkpoint.model_written");
  write_safetensors((dir / rank_file("optimizer", rank)).string(), optimizer_state, {{"format", "pt"}});
}

void commit_train_checkpoint(const std::string& run_dir, int64_t step, uint64_t metrics_bytes, const Json& settings,
                             const Json& data_position, const Json& mesh, const std::vector<int>& writer_ranks,
                             int64_t keep_last) {
  failpoint("train.checkpoint.files_written");
  const fs::path dir = checkpoints_dir(run_dir) / step_name(step);
  Json files = Json::array();
  for (int r : writer_ranks)
    for (const char* kind : {"model", "optimizer"}) {
      const fs::path f = dir / rank_file(kind, r);
      if (!fs::exists(f)) throw IoError(f.string() + ": rank " + std::to_string(r) + "'s checkpoint file is missing after it wrote it");
      files.push_back(file_entry(f, kind, r));
    }
  Json index{{"format", kFormat},
             {"version", kVersion},
             {"step", step},
             {"metrics_bytes", metrics_bytes},
             {"mesh", mesh},
             {"data", data_position},
             {"rng", {{"kind", "counter"}, {"seed", settings.value("seed", Json())}}},
             {"settings", settings},
             {"files", files}};
  write_file_atomic((dir / "index.json").string(), index.dump(1) + "\n");
  failpoint("train.checkpoint.committed");

  if (keep_last > 0) {
    int64_t kept = 0;
    for (const auto& [s, d] : step_dirs(run_dir)) {
      Json unused;
      if (s > step) continue;  // a newer one (from before a resume) is replaced when its step comes
      if (kept < keep_last && validate(d, unused).empty()) ++kept;
      else if (s != step) remove_checkpoint(d);
    }
  }
}

std::optional<TrainCheckpoint> find_latest_checkpoint(const std::string& run_dir, bool quiet) {
  for (const auto& [step, dir] : step_dirs(run_dir)) {
    Json index;
    const std::string why = validate(dir, index);
    if (!why.empty()) {
      if (!quiet) std::cerr << "fme train: skipping checkpoint " << dir.string() << ": " << why << "\n";
      continue;
    }
    TrainCheckpoint c;
    c.dir = dir.string();
    c.step = index.at("step").get<int64_t>();
    c.metrics_bytes = index.at("metrics_bytes").get<uint64_t>();
    c.index = index;
    if (c.step != step) throw FormatError(dir.string() + "/index.json: step " + std::to_string(c.step) + " in " + dir.filename().string());
    return c;
  }
  return std::nullopt;
}

void check_settings(const TrainCheckpoint& ckpt, const Json& settings) {
  const Json& was = ckpt.index.at("settings");
  std::string diff;
  for (const auto& [key, now] : settings.items()) {
    const Json then = was.contains(key) ? was.at(key) : Json();
    if (then != now) diff += (diff.empty() ? "" : "; ") + key + ": checkpoint " + then.dump() + ", now " + now.dump();
  }
  for (const auto& [key, then] : was.items())
    if (!settings.contains(key)) diff += (diff.empty() ? "" : "; ") + key + ": checkpoint " + then.dump() + ", now unset";
  if (!diff.empty())
    throw ConfigError(ckpt.dir + ": made with other settings than this --resume gives (" + diff +
                      "); resume with the run's settings, or train into a new --out");
}

void restore_train_checkpoint(const TrainCheckpoint& ckpt, int source_rank, const NamedTensors& params,
                              const NamedTensors& optimizer_state) {
  int found = 0;
  for (const auto& f : ckpt.index.at("files")) {
    if (f.value("rank", 0) != source_rank) continue;
    const std::string path = (fs::path(ckpt.dir) / f.at("file").get<std::string>()).string();
    const std::string kind = f.at("kind").get<std::string>();
    if (kind == "model") copy_into(path, read_safetensors(path), params);
    else if (kind == "optimizer") copy_into(path, read_safetensors(path), optimizer_state);
    else throw FormatError(ckpt.dir + "/index.json: file kind '" + kind + "', expected model or optimizer");
    ++found;
  }
  if (found != 2)
    throw FormatError(ckpt.dir + "/index.json: " + std::to_string(found) + " files of rank " + std::to_string(source_rank) +
                      ", expected its model and optimizer files");
}

}  // namespace fme

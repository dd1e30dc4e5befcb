// ARC task parsing and streaming readers (see arc_task.h). Validation is strict because a malformed
// grid would silently become a malformed prompt, and activations extracted from it would be wasted.
#include "data/arc_task.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "util/error.h"
#include "util/file.h"

namespace fme::arc {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& where, const std::string& msg) { throw FormatError(where + ": " + msg); }

std::string range_text() { return "1.." + std::to_string(kMaxGridSide); }

// Validates and converts one grid; `field` is its path for messages ("train[2].output").
Grid parse_grid(const Json& j, const std::string& field, const std::string& where) {
  if (!j.is_array()) fail(where, field + " must be an array of rows, got " + describe_json(j));
  if (j.empty()) fail(where, field + " is empty, expected " + range_text() + " rows");
  if (j.size() > kMaxGridSide)
    fail(where, field + " has " + std::to_string(j.size()) + " rows, expected " + range_text());
  Grid g;
  g.reserve(j.size());
  size_t expected_width = 0;
  for (size_t r = 0; r < j.size(); ++r) {
    const Json& row = j[r];
    const std::string row_name = field + " row " + std::to_string(r);
    if (!row.is_array()) fail(where, row_name + " must be an array of cells, got " + describe_json(row));
    if (row.empty() || row.size() > kMaxGridSide)
      fail(where, row_name + " has " + std::to_string(row.size()) + " cells, expected " + range_text());
    if (r == 0)
      expected_width = row.size();
    else if (row.size() != expected_width)
      fail(where,
           row_name + " has " + std::to_string(row.size()) + " cells, expected " + std::to_string(expected_width));
    std::vector<uint8_t> cells(row.size());
    for (size_t c = 0; c < row.size(); ++c) {
      const Json& v = row[c];
      // Only JSON integers: 1.0 or "1" in a grid points at a broken exporter, not a colour.
      bool ok = false;
      if (v.is_number_unsigned())
        ok = v.get<uint64_t>() <= 9;
      else if (v.is_number_integer())
        ok = v.get<int64_t>() >= 0 && v.get<int64_t>() <= 9;
      if (!ok)
        fail(where, row_name + " cell " + std::to_string(c) + " is " + describe_json(v) + ", expected an integer 0..9");
      cells[c] = static_cast<uint8_t>(v.get<int64_t>());
    }
    g.push_back(std::move(cells));
  }
  return g;
}

const Json& member(const Json& obj, const std::string& key, const std::string& field, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) fail(where, field + " is missing");
  return *it;
}

const Json& pair_list(const Json& doc, const std::string& key, const std::string& where) {
  const Json& list = member(doc, key, "field '" + key + "'", where);
  if (!list.is_array()) fail(where, "'" + key + "' must be an array, got " + describe_json(list));
  if (list.empty())
    fail(where, "'" + key + "' is empty, expected at least one " + (key == "train" ? "example" : "test case"));
  return list;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Task parse_task(const Json& doc, std::string id, const std::string& where) {
  if (!doc.is_object()) fail(where, "a task must be a JSON object with 'train' and 'test', got " + describe_json(doc));
  Task task;
  task.id = std::move(id);
  const Json& train = pair_list(doc, "train", where);
  const Json& test = pair_list(doc, "test", where);
  task.train.reserve(train.size());
  for (size_t i = 0; i < train.size(); ++i) {
    const std::string name = "train[" + std::to_string(i) + "]";
    if (!train[i].is_object())
      fail(where, name + " must be an object with 'input' and 'output', got " + describe_json(train[i]));
    Example ex;
    ex.input = parse_grid(member(train[i], "input", name + ".input", where), name + ".input", where);
    ex.output = parse_grid(member(train[i], "output", name + ".output", where), name + ".output", where);
    task.train.push_back(std::move(ex));
  }
  task.test.reserve(test.size());
  for (size_t i = 0; i < test.size(); ++i) {
    const std::string name = "test[" + std::to_string(i) + "]";
    if (!test[i].is_object()) fail(where, name + " must be an object with 'input', got " + describe_json(test[i]));
    TestCase tc;
    tc.input = parse_grid(member(test[i], "input", name + ".input", where), name + ".input", where);
    auto out = test[i].find("output");
    if (out != test[i].end() && !out->is_null()) tc.output = parse_grid(*out, name + ".output", where);
    task.test.push_back(std::move(tc));
  }
  return task;
}

Task parse_task_text(const std::string& text, std::string id, const std::string& where) {
  // Duplicate keys are rejected: with two "train" arrays nlohmann would silently keep the last.
  return parse_task(parse_json_unique_keys(text, where, 64), std::move(id), where);
}

Task read_task_file(const std::string& path) {
  return parse_task_text(read_file(path), fs::path(path).stem().string(), path);
}

std::vector<std::string> list_task_files(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw IoError(dir + ": not a directory of ARC task files");
  std::vector<std::string> files;
  fs::directory_iterator it(dir, ec), end;
  if (ec) throw IoError(dir + ": cannot list directory: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw IoError(dir + ": cannot list directory: " + ec.message());
    const fs::path& p = it->path();
    if (p.extension() == ".json" && it->is_regular_file(ec)) files.push_back(p.string());
  }
  // Sorted by file name so task order (and so sample order in outputs) is the same on every file system.
  std::sort(files.begin(), files.end());
  return files;
}

TaskReader::TaskReader(const std::string& path) : path_(path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    kind_ = Kind::Directory;
    files_ = list_task_files(path);
  } else if (ends_with(path, ".jsonl")) {
    kind_ = Kind::Jsonl;
    jsonl_.open(path, std::ios::binary);
    if (!jsonl_) throw IoError(path + ": cannot open for reading");
  } else {
    kind_ = Kind::File;
    files_.push_back(path);
  }
}

bool TaskReader::next(Task& task) {
  if (kind_ != Kind::Jsonl) {
    if (file_pos_ >= files_.size()) return false;
    task = read_task_file(files_[file_pos_++]);
    return true;
  }
  std::string line;
  while (std::getline(jsonl_, line)) {
    ++line_no_;
    if (!line.empty() && line.back() == '\r') line.pop_back();  // tolerate CRLF files
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path_ + " line " + std::to_string(line_no_);
    Json doc = parse_json_unique_keys(line, where, 64);
    std::string id = "line " + std::to_string(line_no_);
    if (doc.is_object()) {
      auto it = doc.find("task_id");
      if (it != doc.end() && !it->is_null()) {
        if (!it->is_string()) fail(where, "'task_id' must be a string, got " + describe_json(*it));
        id = it->get<std::string>();
      }
    }
    task = parse_task(doc, std::move(id), where);
    return true;
  }
  if (jsonl_.bad()) throw IoError(path_ + ": read failed after line " + std::to_string(line_no_));
  return false;
}

void for_each_task(const std::string& path, const std::function<void(Task&&)>& fn) {
  TaskReader reader(path);
  Task task;
  while (reader.next(task)) fn(std::move(task));
}

Json grid_to_json(const Grid& g) {
  Json rows = Json::array();
  for (const auto& row : g) {
    Json r = Json::array();
    for (uint8_t c : row) r.push_back(static_cast<int>(c));
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace fme::arc

// ARC (Abstraction and Reasoning Corpus) tasks: the grid/task types, strict parsing of one task document,
// and streaming readers over an ARC-AGI directory (one task per *.json file) or a JSONL file (one task
// per line), so `fme extract` can walk thousands of tasks without holding them all in memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "util/json.h"

namespace fme::arc {

// A grid: rows of cells, each cell a colour 0..9. Shape [H][W] with 1 <= H, W <= 30, all rows equal length.
using Grid = std::vector<std::vector<uint8_t>>;

struct Example {
  Grid input;
  Grid output;
};

struct TestCase {
  Grid input;
  std::optional<Grid> output;  // absent in challenge files that hide the answer
};

struct Task {
  std::string id;
  std::vector<Example> train;  // the demonstrations shown in the prompt, non-empty
  std::vector<TestCase> test;  // one prompt per test input, non-empty
};

constexpr size_t kMaxGridSide = 30;

// Parses one task object {"train": [{"input", "output"}], "test": [{"input", "output"?}]}. Other keys are
// ignored. Every problem is a FormatError "<where>: <field path> ...", e.g.
// "x.json: train[2].output row 3 has 4 cells, expected 5". Indices in messages count from 0 (like
// the JSON arrays), for rows and cells too.
Task parse_task(const Json& doc, std::string id, const std::string& where);
// Parses JSON text, then parse_task; malformed JSON and duplicate keys are FormatErrors naming `where`.
Task parse_task_text(const std::string& text, std::string id, const std::string& where);
// Reads one ARC-AGI task file; the id is the file stem ("007bbfb7" for ".../007bbfb7.json").
Task read_task_file(const std::string& path);

// The *.json files of an ARC-AGI directory (e.g. arc-agi/training), sorted by file name. IoError if
// `dir` is not a readable directory.
std::vector<std::string> list_task_files(const std::string& dir);

// A stream of tasks from one source, read one task at a time:
//   - a directory: every *.json file in it, sorted by name, id = file stem;
//   - a file ending in ".jsonl": one task object per non-blank line, id = its "task_id" string field
//     when present, else "line N" (N counts from 1, blank lines included); errors name "<file> line N";
//   - any other file: a single ARC-AGI task file.
// Usage:  TaskReader r(path); Task t; while (r.next(t)) { ... }
class TaskReader {
 public:
  explicit TaskReader(const std::string& path);
  // Fills `task` with the next task; false at the end. Throws FormatError/IoError on a bad task.
  bool next(Task& task);
  const std::string& path() const { return path_; }

 private:
  enum class Kind { Directory, Jsonl, File };
  std::string path_;
  Kind kind_;
  std::vector<std::string> files_;  // Directory: remaining files; File: the one file
  size_t file_pos_ = 0;
  std::ifstream jsonl_;
  size_t line_no_ = 0;
};

// Convenience: calls `fn` for every task of `path` (see TaskReader), in order.
void for_each_task(const std::string& path, const std::function<void(Task&&)>& fn);

// Grid helpers.
inline size_t height(const Grid& g) { return g.size(); }
inline size_t width(const Grid& g) { return g.empty() ? 0 : g[0].size(); }
Json grid_to_json(const Grid& g);

}  // namespace fme::arc

// The stream of samples an extraction runs over, in a fixed order: ARC tasks (a directory of task files, a
// JSONL file of tasks, or one task file) turned into one prompt per test input and augmentation variant,
// text JSONL, or pre-tokenized JSONL. Read one item at a time, never whole. sample_index = position in this
// stream (after augmentation), which is what makes resuming exact.
#pragma once
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "pipelines/extract/options.h"
#include "tokenizer/tokenizer.h"
#include "util/json.h"

namespace fme {

// One line of samples.jsonl.
struct SampleRecord {
  int64_t index = 0;
  Json source;                // {"task": id, "file": path, "test_index": i} | {"line": n}
  Json augmentation;          // ARC with --augment: the variant; else null
  int64_t tokens = 0;         // tokens run through the model (after truncation)
  int64_t excluded = 0;       // of those, rows not stored (--exclude-special-tokens, --exclude-bos)
  int64_t original_tokens = 0;
  bool truncated = false;
  std::string skipped;        // "" or why ("longer than --skip-longer", "empty")
  Json to_json() const;
};

struct Sample {
  SampleRecord rec;
  std::vector<int32_t> ids;  // empty when skipped or fast-forwarded
};

class SampleSource {
 public:
  // `tokenizer` may be null for tokens-jsonl. `vocab_size` bounds ids; `hard_max_len` (0: none) is the
  // longest sequence the model accepts (BERT's positions): longer samples are an error unless truncated or skipped.
  SampleSource(const ExtractOptions& o, const Tokenizer* tokenizer, int64_t vocab_size, int64_t hard_max_len);
  ~SampleSource();

  // Resolved dataset kind: arc-dir | arc-jsonl | arc-file | text-jsonl | tokens-jsonl.
  const std::string& kind() const { return kind_; }
  // ARC: how prompts are wrapped (data/chat_format.h: chatml, llama3, gemma, template, plain); else "".
  const std::string& chat_format() const;
  // Next sample; samples with index < `fast_forward_before` are returned untokenized (cheap).
  // False at the end (or after --max-samples).
  bool next(Sample& s, int64_t fast_forward_before = 0);

  // Guesses the kind of `path` from the file system and its first line.
  static std::string detect_kind(const std::string& path, const std::string& text_field);

 private:
  struct Arc;
  void finish(Sample& s, std::vector<int32_t> ids);

  ExtractOptions opts_;
  const Tokenizer* tokenizer_;
  int64_t vocab_size_, hard_max_len_;
  std::string kind_;
  int64_t next_index_ = 0;
  std::unique_ptr<Arc> arc_;
  std::ifstream lines_;
  int64_t line_no_ = 0;
};

}  // namespace fme

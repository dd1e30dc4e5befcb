#include "pipelines/extract/sample_source.h"

#include <deque>
#include <filesystem>

#include "data/arc_augment.h"
#include "data/arc_prompt.h"
#include "data/arc_task.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace fme {

Json SampleRecord::to_json() const {
  Json j{{"sample_index", index}, {"source", source}, {"augmentation", augmentation}, {"tokens", tokens},
         {"truncated", truncated}};
  if (truncated || !skipped.empty()) j["original_tokens"] = original_tokens;
  if (!skipped.empty()) j["skipped"] = skipped;
  if (excluded > 0) j["excluded_tokens"] = excluded;
  return j;
}

// ARC state: the task reader, the prompt renderer, and the prompts of the current task still to emit.
struct SampleSource::Arc {
  arc::TaskReader reader;
  arc::PromptRenderer renderer;
  struct Pending {
    Json source, augmentation;
    std::string prompt;
  };
  std::deque<Pending> pending;
  Arc(const std::string& path, arc::PromptTemplate t, arc::ChatFormat chat)
      : reader(path), renderer(std::move(t), std::move(chat)) {}
};

const std::string& SampleSource::chat_format() const {
  static const std::string none;
  return arc_ ? arc_->renderer.chat().name : none;
}

std::string SampleSource::detect_kind(const std::string& path, const std::string& text_field) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return "arc-dir";
  if (!fs::exists(path, ec)) throw IoError(path + ": dataset not found");
  std::ifstream in(path);
  if (!in) throw IoError(path + ": cannot open dataset");
  std::string line;
  while (std::getline(in, line) && line.find_first_not_of(" \t\r") == std::string::npos) {
  }
  Json first;
  try {
    first = Json::parse(line);
  } catch (const std::exception&) {
    // A multi-line JSON document: a single ARC task file.
    if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) return "arc-file";
    throw FormatError(path + ": line 1 is not JSON; expected JSONL (--format text-jsonl|tokens-jsonl|arc-jsonl)");
  }
  if (!first.is_object()) throw FormatError(path + ": line 1 is not a JSON object");
  if (first.contains("train") && first.contains("test")) {
    std::string rest;
    return std::getline(in, rest) && rest.find_first_not_of(" \t\r") != std::string::npos ? "arc-jsonl" : "arc-file";
  }
  if (first.contains("input_ids")) return "tokens-jsonl";
  if (first.contains(text_field)) return "text-jsonl";
  throw FormatError(path + ": cannot tell the dataset kind from line 1 (no \"train\"/\"test\", \"input_ids\" or \"" +
                    text_field + "\" field); give --format");
}

SampleSource::SampleSource(const ExtractOptions& o, const Tokenizer* tokenizer, int64_t vocab_size, int64_t hard_max_len)
    : opts_(o), tokenizer_(tokenizer), vocab_size_(vocab_size), hard_max_len_(hard_max_len) {
  kind_ = o.format == "auto" ? detect_kind(o.dataset, o.text_field) : o.format;
  if (kind_ == "arc-dir" || kind_ == "arc-jsonl" || kind_ == "arc-file") {
    if (!tokenizer_) throw ConfigError(o.model_dir + ": no tokenizer.json, needed to tokenize ARC prompts");
    arc::PromptTemplate t = o.prompt_template.empty() ? arc::default_prompt_template() : arc::load_prompt_template(o.prompt_template);
    arc::ChatFormat chat = arc::choose_chat_format(o.chat, t.chat, (fs::path(o.model_dir) / "tokenizer_config.json").string());
    arc_ = std::make_unique<Arc>(o.dataset, std::move(t), std::move(chat));
  } else if (kind_ == "text-jsonl" || kind_ == "tokens-jsonl") {
    if (kind_ == "text-jsonl" && !tokenizer_) throw ConfigError(o.model_dir + ": no tokenizer.json, needed to tokenize text");
    lines_.open(o.dataset);
    if (!lines_) throw IoError(o.dataset + ": cannot open dataset");
  } else {
    throw ConfigError("--format: expected auto, arc-dir, arc-jsonl, arc-file, text-jsonl or tokens-jsonl; got '" + kind_ + "'");
  }
  if (o.augment < 0 || o.augment > 8) throw ConfigError("--augment: expected 0..8 variants per task, got " + std::to_string(o.augment));
  if (o.augment > 0 && !arc_) throw ConfigError("--augment applies to ARC datasets only (this one is " + kind_ + ")");
}

SampleSource::~SampleSource() = default;

void SampleSource::finish(Sample& s, std::vector<int32_t> ids) {
  SampleRecord& r = s.rec;
  r.original_tokens = static_cast<int64_t>(ids.size());
  for (int32_t id : ids)
    if (id < 0 || id >= vocab_size_)
      throw ShapeError(opts_.dataset + ": sample " + std::to_string(r.index) + " " + r.source.dump() + " has token id " +
                       std::to_string(id) + ", outside the model's vocabulary [0, " + std::to_string(vocab_size_) + ")");
  if (ids.empty()) {
    r.skipped = "empty";
  } else if (opts_.skip_longer > 0 && r.original_tokens > opts_.skip_longer) {
    r.skipped = "longer than --skip-longer";
  } else {
    if (opts_.max_seq_len > 0 && r.original_tokens > opts_.max_seq_len) {
      ids.resize(static_cast<size_t>(opts_.max_seq_len));
      r.truncated = true;
    }
    if (hard_max_len_ > 0 && static_cast<int64_t>(ids.size()) > hard_max_len_)
      throw ShapeError(opts_.dataset + ": sample " + std::to_string(r.index) + " " + r.source.dump() + " has " +
                       std::to_string(ids.size()) + " tokens, more than the model's " + std::to_string(hard_max_len_) +
                       " positions; use --max-seq-len or --skip-longer");
    r.tokens = static_cast<int64_t>(ids.size());
    s.ids = std::move(ids);
  }
}

bool SampleSource::next(Sample& s, int64_t fast_forward_before) {
  if (opts_.max_samples >= 0 && next_index_ >= opts_.max_samples) return false;
  s = Sample{};
  s.rec.index = next_index_;
  const bool tokenize = next_index_ >= fast_forward_before;

  if (arc_) {
    while (arc_->pending.empty()) {
      arc::Task task;
      if (!arc_->reader.next(task)) return false;
      std::vector<arc::Augmentation> augs =
          opts_.augment > 0 ? arc::choose_augmentations(task.id, task.train.size(), opts_.augment, opts_.seed)
                            : std::vector<arc::Augmentation>{arc::Augmentation{}};
      for (const auto& a : augs) {
        arc::Task t = opts_.augment > 0 ? arc::augment_task(task, a) : task;
        for (size_t i = 0; i < t.test.size(); ++i) {
          Json source{{"task", task.id}, {"test_index", i}};
          if (kind_ != "arc-dir") source["file"] = opts_.dataset;
          arc_->pending.push_back({source, opts_.augment > 0 ? arc::augmentation_to_json(a) : Json(nullptr),
                                   arc_->renderer.prompt(t, i)});  // cheap next to tokenizing
        }
      }
    }
    auto p = std::move(arc_->pending.front());
    arc_->pending.pop_front();
    s.rec.source = std::move(p.source);
    s.rec.augmentation = std::move(p.augmentation);
    ++next_index_;
    if (tokenize) finish(s, tokenizer_->encode(p.prompt, arc_->renderer.chat().add_special_tokens));
    return true;
  }

  std::string line;
  while (true) {
    if (!std::getline(lines_, line)) {
      if (lines_.bad()) throw IoError(opts_.dataset + ": read failed at line " + std::to_string(line_no_ + 1));
      return false;
    }
    ++line_no_;
    if (line.find_first_not_of(" \t\r") != std::string::npos) break;
  }
  s.rec.source = Json{{"line", line_no_}};
  ++next_index_;
  if (!tokenize) return true;
  const std::string where = opts_.dataset + ":" + std::to_string(line_no_);
  Json j = parse_json(line, where);
  if (kind_ == "text-jsonl") {
    finish(s, tokenizer_->encode(require<std::string>(j, opts_.text_field, where), true));
  } else {
    auto it = j.is_object() ? j.find("input_ids") : j.end();
    if (it == j.end() || !it->is_array()) throw FormatError(where + ": expected \"input_ids\": [integers]");
    std::vector<int32_t> ids;
    ids.reserve(it->size());
    for (const auto& v : *it) {
      if (!v.is_number_integer()) throw FormatError(where + ": \"input_ids\" holds " + v.dump() + ", expected integers");
      int64_t x = v.get<int64_t>();
      if (x < 0 || x >= vocab_size_)
        throw ShapeError(where + ": token id " + std::to_string(x) + " is outside the model's vocabulary [0, " +
                         std::to_string(vocab_size_) + ")");
      ids.push_back(static_cast<int32_t>(x));
    }
    finish(s, std::move(ids));
  }
  return true;
}

}  // namespace fme

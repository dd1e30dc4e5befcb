#include "pipelines/train/packed_rows.h"

#include <algorithm>

#include "pipelines/extract/sample_source.h"
#include "util/error.h"
#include "util/splitmix64.h"

namespace fme {

PackedRows::PackedRows(const PackedRowsOptions& o, const Tokenizer* tokenizer, int64_t vocab_size)
    : o_(o), tokenizer_(tokenizer), vocab_size_(vocab_size) {
  if (o_.seq_len < 2) throw ConfigError("--seq-len must be at least 2, got " + std::to_string(o_.seq_len));
  if (o_.shuffle_buffer < 0) throw ConfigError("--shuffle-buffer must be >= 0, got " + std::to_string(o_.shuffle_buffer));
  if (!(o_.holdout_fraction >= 0 && o_.holdout_fraction < 1))
    throw ConfigError("--eval-fraction must be in [0, 1), got " + std::to_string(o_.holdout_fraction));
  start_epoch(0);
}

PackedRows::~PackedRows() = default;

bool PackedRows::needs_tokenizer(const std::string& path, const std::string& format, const std::string& text_field) {
  const std::string kind = format == "auto" ? SampleSource::detect_kind(path, text_field) : format;
  return kind != "tokens-jsonl";
}

void PackedRows::start_epoch(int64_t epoch) {
  ExtractOptions e;
  e.dataset = o_.path;
  e.format = o_.format;
  e.text_field = o_.text_field;
  source_ = std::make_unique<SampleSource>(e, tokenizer_, vocab_size_, /*hard_max_len=*/0);
  source_done_ = false;
  buffer_.clear();
  // std::seed_seq and mt19937_64 are specified exactly by the standard: the same order on every platform.
  const auto u = [](uint64_t v, int half) { return static_cast<uint32_t>(v >> (32 * half)); };
  std::seed_seq seq{u(o_.seed, 0), u(o_.seed, 1), u(static_cast<uint64_t>(epoch), 0), u(static_cast<uint64_t>(epoch), 1), 0x70ac4u};
  rng_.seed(seq);
  epoch_ = epoch;
  doc_.clear();
  doc_at_ = 0;
  doc_number_ = -1;
  rows_ = 0;
}

bool PackedRows::held_out(int64_t sample_index) const {
  // A hash of (seed, index): an even split with no state.
  return unit_interval(splitmix64(splitmix64(o_.seed) ^ static_cast<uint64_t>(sample_index))) < o_.holdout_fraction;
}

bool PackedRows::next_document(std::vector<int32_t>& ids) {
  const size_t cap = static_cast<size_t>(o_.shuffle_buffer);
  while (!source_done_) {
    Sample s;
    if (!source_->next(s)) {
      source_done_ = true;
      break;
    }
    if (s.ids.empty()) continue;
    if (o_.holdout_fraction > 0 && held_out(s.rec.index) != o_.holdout) continue;
    if (cap == 0) {
      ids = std::move(s.ids);
      return true;
    }
    if (buffer_.size() < cap) {  // still filling
      buffer_.push_back(std::move(s.ids));
      continue;
    }
    const size_t j = rng_() % cap;  // 64-bit draws: the modulo's bias is below 2^-40
    ids = std::move(buffer_[j]);
    buffer_[j] = std::move(s.ids);
    return true;
  }
  if (buffer_.empty()) return false;
  const size_t j = rng_() % buffer_.size();
  ids = std::move(buffer_[j]);
  buffer_[j] = std::move(buffer_.back());
  buffer_.pop_back();
  return true;
}

bool PackedRows::next(PackedRow& row) {
  const size_t L = static_cast<size_t>(o_.seq_len);
  row.ids.assign(L, 0);
  row.segment.assign(L, 0);
  row.position.assign(L, 0);
  row.document.assign(L, -1);
  row.offset.assign(L, -1);
  size_t t = 0;
  int32_t segment = 0;
  while (t < L) {
    if (doc_at_ >= static_cast<int64_t>(doc_.size())) {
      if (!o_.packing && t > 0) break;  // without packing a document starts a row
      std::vector<int32_t> d;
      if (!next_document(d)) break;
      if (o_.separator >= 0 && d.back() != o_.separator) d.push_back(o_.separator);
      doc_ = std::move(d);
      doc_at_ = 0;
      ++doc_number_;
    }
    const size_t n = std::min(L - t, doc_.size() - static_cast<size_t>(doc_at_));
    ++segment;
    for (size_t i = 0; i < n; ++i) {
      row.ids[t + i] = doc_[static_cast<size_t>(doc_at_) + i];
      row.segment[t + i] = segment;
      row.position[t + i] = static_cast<int32_t>(i);
      row.document[t + i] = doc_number_;
      row.offset[t + i] = doc_at_ + static_cast<int64_t>(i);
    }
    t += n;
    doc_at_ += static_cast<int64_t>(n);
  }
  if (t == 0) {
    if (rows_ == 0) throw FormatError(o_.path + ": no tokens to train on (every line is empty)");
    return false;
  }
  row.real_tokens = static_cast<int64_t>(t);
  ++rows_;
  return true;
}

}  // namespace fme

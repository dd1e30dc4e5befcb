// The training rows of a streamed JSONL dataset (--dataset): text (tokenized with the model's tokenizer, its
// special tokens added as HF's encode does) or pre-tokenized "input_ids" lines, read through extract's
// SampleSource (the same formats, the same errors naming file and line).
//
// One epoch, everything following from (seed, epoch):
//   1. documents in file order pass a shuffle buffer of `shuffle_buffer` documents (each incoming document
//      takes the place of one drawn at random, which goes out; the rest drain in random order); 0 = file order;
//   2. decoders get `separator` (EOS) after each document that does not already end with it; BERT's encoding
//      already ends with [SEP];
//   3. packing (default): the documents are laid end to end into rows of seq_len tokens, each piece of a
//      document its own segment (1, 2, ... within the row) with positions from 0; a document longer than the
//      room left continues in the next row. --no-packing: each document starts a row (longer ones continue in
//      the next). Only a row's tail is padding (segment 0), in the epoch's last row or without packing.
// Every token also carries (document number in the epoch, offset in the document), which the MLM masking
// draws from: a token is masked the same way packed or not.
// A held-out fraction (--eval-fraction) splits the documents by a hash of (seed, their sample index): the
// training stream passes over them and the evaluation stream reads only them, so the two never share one.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace fme {

class Tokenizer;
class SampleSource;

struct PackedRowsOptions {
  std::string path, format = "auto", text_field = "text";
  int64_t seq_len = 512;
  bool packing = true;
  int64_t shuffle_buffer = 10000;  // documents; 0: file order
  uint64_t seed = 0;
  int32_t separator = -1;          // appended to each document that does not end with it; -1: none
  double holdout_fraction = 0;     // in [0, 1): the share of documents held out for evaluation
  bool holdout = false;            // false: the documents not held out; true: only those held out
};

struct PackedRow {
  std::vector<int32_t> ids, segment, position;  // [seq_len] each; segment 0 = padding
  std::vector<int64_t> document, offset;        // [seq_len]: the token's document (in the epoch) and place in it
  int64_t real_tokens = 0;
};

class PackedRows {
 public:
  // `tokenizer` may be null for pre-tokenized data; ids are checked against `vocab_size`. Reads the first line
  // to tell the format (FormatError naming the file when it cannot).
  PackedRows(const PackedRowsOptions& o, const Tokenizer* tokenizer, int64_t vocab_size);
  ~PackedRows();

  // Whether reading `path` as `format` ("auto": told from its first line) needs a tokenizer (text lines do).
  static bool needs_tokenizer(const std::string& path, const std::string& format, const std::string& text_field);

  // Starts epoch `epoch` from its beginning.
  void start_epoch(int64_t epoch);
  // The epoch's next row; false at its end (FormatError when the whole epoch held no token).
  bool next(PackedRow& row);
  int64_t epoch() const { return epoch_; }

 private:
  bool next_document(std::vector<int32_t>& ids);  // through the shuffle buffer
  bool held_out(int64_t sample_index) const;

  PackedRowsOptions o_;
  const Tokenizer* tokenizer_;
  int64_t vocab_size_;
  int64_t epoch_ = 0;
  std::unique_ptr<SampleSource> source_;
  bool source_done_ = false;
  std::vector<std::vector<int32_t>> buffer_;  // the shuffle buffer
  std::mt19937_64 rng_;
  std::vector<int32_t> doc_;  // the document being laid into rows, from doc_at_
  int64_t doc_at_ = 0, doc_number_ = -1;
  int64_t rows_ = 0;  // of this epoch
};

}  // namespace fme

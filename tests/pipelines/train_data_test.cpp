// Training data: packed rows of a JSONL dataset (every document's tokens exactly once per epoch, in order, a
// segment per piece with positions from 0, a seeded shuffle) and the objectives' labels (causal labels stop
// at document boundaries; MLM masking at HF's rates, never on special tokens, reproducible from (seed, step)).
#include <gtest/gtest.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "pipelines/train/packed_rows.h"
#include "pipelines/train/train_batch.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

// A tokens-jsonl file of `n` documents of random lengths 1..max_len; document d's tokens are d*1000 + i.
std::string write_docs(const std::string& name, int n, int max_len, std::vector<std::vector<int32_t>>* docs) {
  const std::string path = (fs::temp_directory_path() / ("fme-train-data-" + std::to_string(getpid()) + "-" + name)).string();
  std::ofstream f(path);
  std::mt19937 rng(7);
  for (int d = 0; d < n; ++d) {
    std::vector<int32_t> ids(1 + rng() % max_len);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = d * 1000 + static_cast<int32_t>(i);
    f << "{\"input_ids\": [";
    for (size_t i = 0; i < ids.size(); ++i) f << (i ? "," : "") << ids[i];
    f << "]}\n";
    if (d % 5 == 0) f << "\n";  // blank lines are passed over
    docs->push_back(ids);
  }
  return path;
}

// The documents as one epoch's rows give them back: pieces concatenated by (document, offset).
std::map<int64_t, std::vector<int32_t>> reassemble(PackedRows& rows, int64_t seq_len, std::vector<int64_t>* order,
                                                   int64_t* padded_rows) {
  std::map<int64_t, std::vector<int32_t>> got;
  PackedRow r;
  *padded_rows = 0;
  while (rows.next(r)) {
    EXPECT_EQ(static_cast<int64_t>(r.ids.size()), seq_len);
    int32_t last_segment = 0;
    for (int64_t t = 0; t < seq_len; ++t) {
      const size_t i = static_cast<size_t>(t);
      if (r.segment[i] == 0) {  // padding: only the tail
        for (int64_t u = t; u < seq_len; ++u) EXPECT_EQ(r.segment[static_cast<size_t>(u)], 0);
        ++*padded_rows;
        break;
      }
      const bool starts = t == 0 || r.segment[i] != last_segment;
      if (starts) {
        EXPECT_EQ(r.segment[i], last_segment + 1) << "segments count up within a row";
        EXPECT_EQ(r.position[i], 0) << "positions restart with each piece";
      } else {
        EXPECT_EQ(r.position[i], r.position[i - 1] + 1);
        EXPECT_EQ(r.document[i], r.document[i - 1]);
      }
      last_segment = r.segment[i];
      auto& doc = got[r.document[i]];
      EXPECT_EQ(static_cast<int64_t>(doc.size()), r.offset[i]) << "a document's pieces come in order";
      doc.push_back(r.ids[i]);
      if (doc.size() == 1) order->push_back(doc[0] / 1000);
    }
  }
  return got;
}

TEST(PackedRows, EveryDocumentOnceInOrderPackedOrNotShuffledBySeed) {
  std::vector<std::vector<int32_t>> docs;
  const std::string path = write_docs("docs.jsonl", 60, 40, &docs);
  for (bool packing : {true, false}) {
    SCOPED_TRACE(packing ? "packed" : "one document per row");
    PackedRowsOptions o;
    o.path = path;
    o.seq_len = 16;
    o.packing = packing;
    o.shuffle_buffer = 8;
    o.seed = 3;
    PackedRows rows(o, nullptr, 100000);
    std::vector<int64_t> order;
    int64_t padded = 0;
    const auto got = reassemble(rows, o.seq_len, &order, &padded);
    ASSERT_EQ(got.size(), docs.size());
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    for (size_t d = 0; d < docs.size(); ++d) EXPECT_EQ(sorted[d], static_cast<int64_t>(d));
    for (const auto& [n, ids] : got) EXPECT_EQ(ids, docs[static_cast<size_t>(ids[0] / 1000)]) << "document " << n;
    EXPECT_NE(order, sorted) << "the shuffle buffer reorders documents";
    if (packing) EXPECT_EQ(padded, 1) << "packed rows are full but the last";
    else EXPECT_GT(padded, 30);
    // The same seed and epoch give the same order; the next epoch another one.
    rows.start_epoch(0);
    std::vector<int64_t> again;
    reassemble(rows, o.seq_len, &again, &padded);
    EXPECT_EQ(again, order);
    rows.start_epoch(1);
    std::vector<int64_t> next;
    reassemble(rows, o.seq_len, &next, &padded);
    EXPECT_NE(next, order);
  }
  // shuffle_buffer 0: file order; a separator closes every document.
  PackedRowsOptions o;
  o.path = path;
  o.seq_len = 32;
  o.shuffle_buffer = 0;
  o.separator = 99999;
  PackedRows rows(o, nullptr, 100000);
  PackedRow r;
  int64_t separators = 0, first_doc = -1;
  while (rows.next(r))
    for (size_t i = 0; i < r.ids.size(); ++i) {
      separators += r.ids[i] == 99999;
      if (first_doc < 0) first_doc = r.ids[i] / 1000;
    }
  EXPECT_EQ(separators, 60);
  EXPECT_EQ(first_doc, 0);
  fs::remove(path);
}

// --eval-fraction: the held-out documents and the rest are disjoint and together every document, about the
// asked share held out, the same split every epoch.
TEST(PackedRows, AHeldOutFractionSplitsTheDocumentsDisjointly) {
  std::vector<std::vector<int32_t>> docs;
  const std::string path = write_docs("holdout.jsonl", 400, 5, &docs);
  auto documents = [&](bool holdout, int64_t epoch) {
    PackedRowsOptions o;
    o.path = path;
    o.seq_len = 8;
    o.holdout_fraction = 0.25;
    o.holdout = holdout;
    o.seed = 9;
    PackedRows rows(o, nullptr, 1000000);
    rows.start_epoch(epoch);
    std::set<int32_t> seen;
    PackedRow r;
    while (rows.next(r))
      for (size_t i = 0; i < r.ids.size(); ++i)
        if (r.segment[i] > 0) seen.insert(r.ids[i] / 1000);
    return seen;
  };
  const std::set<int32_t> train = documents(false, 0), held = documents(true, 0);
  for (int32_t d : held) EXPECT_FALSE(train.count(d)) << "document " << d << " is on both sides";
  EXPECT_EQ(train.size() + held.size(), 400u);
  EXPECT_NEAR(static_cast<double>(held.size()) / 400, 0.25, 0.06);
  EXPECT_EQ(documents(false, 1), train) << "the split does not move between epochs";
  fs::remove(path);
}

TEST(PackedRows, BadDatasetsAreErrorsNamingTheFile) {
  const std::string path = (fs::temp_directory_path() / ("fme-train-data-bad-" + std::to_string(getpid()))).string();
  PackedRowsOptions o;
  o.path = path;
  o.seq_len = 8;
  { std::ofstream(path) << "{\"input_ids\": [1, 2, 300]}\n"; }
  try {
    PackedRows rows(o, nullptr, 100);
    PackedRow r;
    rows.next(r);
    FAIL() << "an id past the vocabulary must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("outside the model's vocabulary"), std::string::npos) << e.what();
  }
  { std::ofstream(path) << "{\"input_ids\": []}\n\n"; }
  try {
    PackedRows rows(o, nullptr, 100);
    PackedRow r;
    rows.next(r);
    FAIL() << "a dataset without tokens must be refused";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("no tokens to train on"), std::string::npos) << e.what();
  }
  { std::ofstream(path) << "{\"body\": \"x\"}\n"; }
  EXPECT_THROW(PackedRows(o, nullptr, 100), FormatError);
  fs::remove(path);
}

PackedRow row_of(const std::vector<int32_t>& ids, const std::vector<int32_t>& segment, int64_t doc0 = 0) {
  PackedRow r;
  r.ids = ids;
  r.segment = segment;
  int32_t pos = 0, last = 0;
  int64_t doc = doc0 - 1;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (segment[i] != last) pos = 0, ++doc;
    last = segment[i];
    r.position.push_back(segment[i] ? pos++ : 0);
    r.document.push_back(segment[i] ? doc : -1);
    r.offset.push_back(segment[i] ? r.position.back() : -1);
  }
  return r;
}

TEST(TrainBatch, CausalLabelsStopAtDocumentBoundaries) {
  const LabeledBatch b = make_train_batch({row_of({5, 6, 7, 8, 9, 0}, {1, 1, 2, 2, 2, 0})}, Objective::Causal, nullptr, 0, 0, false);
  EXPECT_TRUE(at::equal(b.labels, at::tensor({-100, 6, -100, 8, 9, -100}, at::kLong).view({1, 6})));
  EXPECT_TRUE(at::equal(b.batch.attention_mask, at::tensor({1, 1, 1, 1, 1, 0}, at::kLong).view({1, 6})));
  EXPECT_TRUE(at::equal(b.batch.position_ids, at::tensor({0, 1, 0, 1, 2, 0}, at::kLong).view({1, 6})));
  EXPECT_TRUE(at::equal(b.batch.segment_ids, at::tensor({1, 1, 2, 2, 2, 0}, at::kLong).view({1, 6})));
  EXPECT_FALSE(b.batch.token_type_ids.defined());
}

TEST(TrainBatch, MaskedLMFollowsHFRatesSparesSpecialTokensAndIsReproducible) {
  MlmMasking m;
  m.mask_id = 103;
  m.vocab_size = 30522;
  m.special = {101, 102};
  const int64_t T = 4096;
  std::vector<PackedRow> rows;
  std::mt19937 rng(1);
  for (int b = 0; b < 16; ++b) {
    std::vector<int32_t> ids(T), seg(T, 1);
    for (auto& x : ids) x = 1000 + static_cast<int32_t>(rng() % 20000);
    ids[0] = 101, ids[T - 1] = 102;
    rows.push_back(row_of(ids, seg, b));
  }
  const LabeledBatch a = make_train_batch(rows, Objective::MaskedLM, &m, 5, 2, true);
  const at::Tensor chosen = a.labels.ne(-100);
  const double n = static_cast<double>(chosen.sum().item<int64_t>()), real = 16.0 * (T - 2);
  EXPECT_NEAR(n / real, 0.15, 0.01);
  at::Tensor orig = at::empty({16, T}, at::kLong);
  for (int b = 0; b < 16; ++b)
    for (int64_t t = 0; t < T; ++t) orig[b][t] = rows[static_cast<size_t>(b)].ids[static_cast<size_t>(t)];
  const double masked = a.batch.input_ids.eq(103).logical_and(chosen).sum().item<int64_t>();
  const double kept = a.batch.input_ids.eq(orig).logical_and(chosen).sum().item<int64_t>();
  EXPECT_NEAR(masked / n, 0.8, 0.02);
  EXPECT_NEAR(kept / n, 0.1 + 0.1 / 30522, 0.015);
  EXPECT_NEAR((n - masked - kept) / n, 0.1, 0.015);
  EXPECT_TRUE(at::equal(a.labels.masked_select(chosen), orig.masked_select(chosen)));
  EXPECT_EQ(a.labels.select(1, 0).ne(-100).sum().item<int64_t>(), 0) << "[CLS] is never chosen";
  EXPECT_EQ(a.labels.select(1, T - 1).ne(-100).sum().item<int64_t>(), 0) << "[SEP] is never chosen";
  EXPECT_TRUE(at::equal(a.batch.token_type_ids, at::zeros({16, T}, at::kLong)));
  // The same (seed, step): the same masks; another step or seed: others.
  EXPECT_TRUE(at::equal(make_train_batch(rows, Objective::MaskedLM, &m, 5, 2, true).labels, a.labels));
  EXPECT_FALSE(at::equal(make_train_batch(rows, Objective::MaskedLM, &m, 5, 3, true).labels, a.labels));
  EXPECT_FALSE(at::equal(make_train_batch(rows, Objective::MaskedLM, &m, 6, 2, true).labels, a.labels));
}

}  // namespace
}  // namespace fme

// The output directory of `fme extract` and its exactly-once commit protocol.
//   shard-00000.safetensors ...  contiguous groups of whole samples, each written atomically
//   samples.jsonl                one line per sample (stored or skipped), appended at each commit
//   manifest.json                the commit point: rewritten atomically after each shard
// A commit writes the shard (temp, fsync, rename), appends and fsyncs samples.jsonl, then renames the new
// manifest into place. Whatever a kill leaves past the last manifest (a shard file, samples.jsonl lines,
// temp files) is removed on --resume, and the run continues from manifest.next_sample.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/hook_points.h"
#include "pipelines/extract/sample_source.h"
#include "util/json.h"

namespace fme {

// A computed sample: its record, the token ids [n] and positions [n] of its stored rows and, per stored hook
// point, their activations [n, ...].
struct SampleResult {
  SampleRecord rec;
  std::vector<int32_t> ids;
  std::vector<int32_t> positions;  // each stored row's position in the sample (0..tokens-1), ascending
  std::vector<at::Tensor> points;  // one per stored hook point, [n, row...] in the storage dtype, contiguous
};

// Running statistics of one hook point over the stored rows (as stored, accumulated in fp64), for SAE
// normalisation: mean = sum / rows, mean squared norm = sum_sq_norm / rows.
struct PointStats {
  int64_t rows = 0;
  at::Tensor sum;          // [row numel] float64
  double sum_sq_norm = 0;  // sum over rows of |row|^2
};

// The format version this fme writes: 1 stored resid_post.{i} per layer; 2 stores hook points by name.
constexpr int kRunFormatVersion = 2;

struct RunTotals {
  int64_t samples = 0, stored_samples = 0, tokens = 0, bytes = 0, shards = 0, truncated = 0, skipped = 0;
  int64_t excluded_tokens = 0;  // rows left out by the row filter (not counted in tokens)

  RunTotals& operator+=(const RunTotals& o) {
    samples += o.samples, stored_samples += o.stored_samples, tokens += o.tokens, bytes += o.bytes, shards += o.shards;
    truncated += o.truncated, skipped += o.skipped, excluded_tokens += o.excluded_tokens;
    return *this;
  }
};

// The output settings a run in `dir` was started with (its manifest's identity.settings), or an empty object
// when there is no readable manifest there: so --resume can keep what the first invocation resolved.
Json recorded_run_settings(const std::string& dir);

// "settings.dtype: \"fp32\" -> \"bf16\"" for every leaf where two JSON values differ (a run's identities).
std::vector<std::string> differences(const Json& a, const Json& b, const std::string& prefix = "");

// What a run directory tells, and asks, the code that copies it elsewhere (an upload to object storage).
struct RunDirHooks {
  // After every manifest write (the run's start included), with the manifest just written and its bytes.
  std::function<void(const Json& manifest, const std::string& text)> committed;
  // On --resume, for a listed shard missing locally (removed after its upload was verified): whether its copy
  // elsewhere is whole. Without it (or when it says no), a missing shard is an error.
  std::function<bool(const Json& shard)> stored_elsewhere;
  // Before each commit writes anything: throws to stop the run (a work unit another process took over).
  std::function<void()> before_commit;
};

class RunDir {
 public:
  // `identity` = {"model": .., "dataset": .., "settings": ..}: what must match for --resume.
  // `info` = other manifest fields (dtypes, prompt, ...); `points` = the hook points stored, each sample's
  // rows in `store` dtype. Fresh: `dir` must be absent or empty.
  // `first_sample`: the index of its first sample (a work unit's, pipelines/extract/unit_run.h; 0 for a run).
  RunDir(std::string dir, Json identity, Json info, std::vector<HookPoint> points, at::ScalarType store,
         uint64_t shard_size, bool zstd, bool resume, RunDirHooks hooks = {}, int64_t first_sample = 0);

  int64_t next_sample() const { return next_sample_; }  // first sample index not yet committed
  const RunTotals& totals() const { return totals_; }
  bool complete() const { return complete_; }

  // Adds the next sample (index == next expected); commits a shard once it reaches shard_size bytes.
  void add(SampleResult&& r);
  // Commits what remains and marks the run complete.
  void finish();

 private:
  void commit(bool final);
  void write_manifest();
  void recover();

  std::string dir_;
  RunDirHooks hooks_;
  Json identity_, info_;
  std::vector<HookPoint> points_;
  at::ScalarType store_;
  std::vector<PointStats> stats_;          // committed shards
  std::vector<PointStats> pending_stats_;  // the shard being filled
  uint64_t shard_size_;
  bool zstd_;
  Json shards_ = Json::array();
  RunTotals totals_;
  int64_t next_sample_ = 0;        // committed
  int64_t next_expected_ = 0;      // added
  uint64_t samples_jsonl_bytes_ = 0;
  bool complete_ = false;
  // The shard being filled.
  std::vector<SampleResult> pending_;
  uint64_t pending_bytes_ = 0;
  std::string pending_lines_;      // samples.jsonl lines since the last commit (stored and skipped)
};

}  // namespace fme

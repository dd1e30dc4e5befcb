// A run cut into work units: `--unit-samples N` consecutive samples each, so that many processes can share one
// run (each unit computed by whoever claims it) and a run can be resumed by any number of them. Each unit is a
// run directory of its own, written by RunDir exactly once (shards, samples.jsonl, manifest.json, batches
// formed within the unit alone, so its bytes do not depend on who computed it):
//
//   RUN/units/unit-000000/ ...   samples [0, N)
//   RUN/units/unit-000001/ ...   samples [N, 2N)
//   RUN/samples.jsonl            the complete units' lines, in sample order
//   RUN/manifest.json            one manifest over the units, rewritten atomically by commit()
//
// The run's manifest has the layout of a plain run's: its shards (file names relative to RUN, "units/unit-
// 000003/shard-00000.safetensors"), totals and stats cover the longest prefix of complete units, so a reader
// sees one dataset in global sample order that only ever grows; "units" records the unit size, the count and
// which units are complete.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "pipelines/extract/run_dir.h"
#include "util/json.h"

namespace fme {

// What a unit run tells, and asks, the code that mirrors it elsewhere (an upload to object storage).
struct UnitRunHooks {
  // Whether a complete unit (its directory relative to the run, and its manifest's bytes) is published
  // elsewhere; one that is not yet stays out of the run's manifest, which so lists only published units.
  std::function<bool(const std::string& unit_dir, const std::string& manifest_text)> published;
  // After each write of the run's manifest, with its bytes.
  std::function<void(const Json& manifest, const std::string& text)> committed;
};

class UnitRun {
 public:
  // A fresh run needs `dir` absent or empty; a resume checks the run's identity (which names the unit size).
  // Only the `writer` (rank 0 of many) touches RUN's own files; the others read the units' manifests.
  UnitRun(std::string dir, Json identity, int64_t unit_samples, int64_t total_samples, bool resume, bool writer = true,
          UnitRunHooks hooks = {});

  int64_t count() const { return count_; }
  int64_t first(int64_t unit) const { return unit * unit_samples_; }
  int64_t end(int64_t unit) const;
  std::string unit_dir(int64_t unit) const;
  std::string unit_name(int64_t unit) const;  // its directory relative to the run: "units/unit-000003"
  bool started(int64_t unit) const;   // its directory has a manifest
  bool complete(int64_t unit) const;  // its manifest says so (and it is published, with hooks.published)
  // The totals of the units' manifests (complete or not): what is already computed; or of all but `unit`.
  RunTotals computed() const { return computed_except(-1); }
  RunTotals computed_except(int64_t unit) const;

  // Extends samples.jsonl with the complete units after the prefix it holds, then rewrites manifest.json over
  // that prefix (the writer only). Returns whether every unit is complete.
  bool commit();

 private:
  Json unit_manifest(int64_t unit) const;

  std::string dir_;
  Json identity_;
  int64_t unit_samples_, total_, count_;
  bool writer_;
  UnitRunHooks hooks_;
  int64_t prefix_ = 0;                 // complete units that samples.jsonl and the manifest cover
  uint64_t samples_jsonl_bytes_ = 0;

  // A complete unit never changes, so each is read once (a long run has thousands of units, each manifest
  // holding its statistics): its totals, and until the prefix takes it in, its shards and statistics.
  struct PointSums {
    int64_t rows = 0;
    std::vector<double> sum;
    double sum_sq_norm = 0;
  };
  struct Done {
    RunTotals totals;
    Json shards;                                  // names relative to the run, with unit and rank
    std::map<std::string, PointSums> stats;       // emptied once the prefix has it
  };
  const Done* done(int64_t unit) const;           // null while the unit is not complete
  mutable std::map<int64_t, Done> done_;
  // The prefix's aggregate, grown as units join it (and read back from manifest.json on resume).
  Json prefix_shards_ = Json::array();
  RunTotals prefix_totals_;
  std::map<std::string, PointSums> prefix_stats_;
  std::string written_;    // manifest.json as this process last wrote it
  mutable Json template_;  // the fields every unit's manifest shares (model, dataset, dtypes, hooks, ...)
};

}  // namespace fme

// `fme extract`: activations at chosen hook points (models/hook_points.h), for every real token of every sample of a
// dataset, into shards that any Python user can read — exactly once, resumable after a kill.
//
// Three stages on their own threads, joined by bounded queues, so the forward pass never waits on I/O:
//   read + tokenize + bucket  ->  forward (stop after the deepest requested block)  ->  reorder + pack + write
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "dist/process_group.h"

#include "pipelines/extract/options.h"

namespace fme {

struct ExtractSummary {
  int64_t samples = 0, stored_samples = 0, tokens = 0, shards = 0, bytes = 0, truncated = 0, skipped = 0;
  int64_t excluded_tokens = 0;
  double seconds = 0;           // whole run, model loading included
  double pipeline_seconds = 0;  // from the first sample read to the last shard written
  double forward_seconds = 0;   // inside the forward pass
  std::string dtype, weights_dtype, out_dtype;  // as resolved (compute, weights, storage)
  std::string upload_url;                       // s3://... when the run is mirrored there
  int64_t uploaded_shards = 0, uploaded_bytes = 0;
  double upload_wait_seconds = 0;               // commits held back by --max-staged
  std::string to_json() const;  // one line
};

// `dist`: the launched processes (torchrun, mpirun, srun) sharing one run, which then needs --unit-samples;
// null for one process.
ExtractSummary run_extract(const ExtractOptions& opts, std::shared_ptr<dist::Dist> dist = nullptr);

}  // namespace fme

// The settings of one `fme extract` run, and the parts of them that define its output (hashed into the
// manifest, so `--resume` with different settings is refused with a message saying what differs).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/hook_points.h"
#include "util/json.h"
#include "util/progress.h"

namespace fme {

struct ExtractOptions {
  // Inputs.
  std::string model_dir;
  std::string dataset;
  std::string format = "auto";  // auto | arc-dir | arc-jsonl | arc-file | text-jsonl | tokens-jsonl
  std::string text_field = "text";
  int64_t max_samples = -1;     // -1: all
  std::string prompt_template;  // empty: the built-in arc24 template
  std::string chat = "auto";    // ARC prompts: auto | model | template | plain (data/chat_format.h)
  int augment = 0;              // 0: none; 1..8 variants per ARC task
  uint64_t seed = 0;
  int64_t max_seq_len = 0;      // 0: never truncate
  int64_t skip_longer = 0;      // 0: never skip
  bool exclude_special_tokens = false;  // rows of the tokenizer's special tokens are not stored
  bool exclude_bos = false;             // nor a leading BOS row
  // Compute.
  std::string hooks;            // hook points: 'blocks.{10..23}.hook_resid_post,blocks.12.hook_mlp_out' (globs too)
  std::string layers;           // shorthand for blocks.{i}.hook_resid_post: "10-23", "0,5,7-9", "all"
                                // (neither given: every block's hook_resid_post)
  std::string dtype = "auto";   // compute: auto | fp32 | bf16 (auto: bf16 only where the hardware is fast at it)
  std::string weights_dtype;    // weights kept in: fp32 | bf16 (default: the compute dtype)
  std::string out_dtype;        // storage: fp32 | bf16 | fp16 (default: bf16; on --resume, the run's)
  int64_t batch_tokens = 8192;  // token budget per batch (padded B x T)
  int64_t batch_size = 0;       // or a fixed count (0: use the token budget)
  int64_t bucket_window = 256;  // samples sorted by length within windows of this many
  // Output.
  std::string out;
  uint64_t shard_size = 1ull << 30;
  std::string compress = "none";  // none | zstd
  bool resume = false;
  int64_t unit_samples = 0;       // > 0: the run is cut into work units of this many samples (unit_run.h)
  double unit_lease_s = 600;      // a unit whose owner's heartbeat stops this long is taken over (unit_claims.h)
  // Object storage (not part of the output's identity): the run mirrored to s3://bucket/prefix as it is
  // written (pipelines/extract/run_upload.h). --out s3://... with --staging DIR is --out DIR --upload s3://...
  std::string upload;                        // s3://bucket/prefix
  std::string staging;                       // the local directory when --out is s3://
  std::string s3_endpoint;                   // empty: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / AWS S3
  uint64_t part_size = uint64_t(64) << 20;   // multipart uploads above this
  int upload_parallel = 4;                   // parts in flight
  uint64_t max_staged = uint64_t(8) << 30;   // committed bytes not uploaded before compute waits
  bool delete_local = false;                 // remove a shard's local file once its upload is verified
  // Run-time only (not part of the output's identity).
  int threads = 0;
  bool quiet = false;
  // Called on run_extract's calling thread after each commit check and once at the end (the same counters
  // the progress line shows); an exception it throws stops the run as any error does. For bindings.
  std::function<void(const ProgressStats&)> on_progress;
};

// The checks of values that need no file: every front end (the CLI, the Python binding) gets them from here
// through run_extract, which calls this first. ConfigError naming the option (as --flag) otherwise.
void check_extract_options(const ExtractOptions& o);

// Where the run's files are written (--out, or --staging when --out is s3://) and where they are mirrored
// ("" when they stay local).
std::string local_run_dir(const ExtractOptions& o);
std::string upload_url(const ExtractOptions& o);

// "10-23", "0,3,5-7", "all" -> sorted unique block indices < num_layers; ConfigError otherwise.
std::vector<int64_t> parse_layers(const std::string& spec, int64_t num_layers);

// The per-token hook points a run stores, in forward order: those --hooks selects, and the hook_resid_post of
// each --layers block; every block's hook_resid_post when neither is given. ConfigError naming the valid
// points when a pattern matches none.
std::vector<HookPoint> extract_hook_points(const ExtractOptions& o, const std::vector<HookPoint>& available,
                                           int64_t num_layers);

// The settings that determine the bytes of the output (everything but threads/quiet/resume/out), with
// dtype, weights_dtype and out_dtype already resolved to concrete names (weights_dtype listed only where it
// differs from the compute dtype) and the hook points resolved to their names.
Json output_settings(const ExtractOptions& o, const std::vector<HookPoint>& points);

}  // namespace fme

#include "pipelines/extract/options.h"

#include "storage/s3_location.h"

#include <algorithm>
#include <set>

#include "data/chat_format.h"
#include "models/hook_select.h"
#include "util/error.h"

namespace fme {
namespace {

int64_t parse_index(const std::string& s, const std::string& spec) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
    throw ConfigError("--layers '" + spec + "': '" + s + "' is not a block index");
  return std::stoll(s);
}

}  // namespace

void check_extract_options(const ExtractOptions& o) {
  if (o.out.empty()) throw ConfigError("--out is required");
  if (o.batch_tokens <= 0) throw ConfigError("--batch-tokens must be positive");
  if (o.batch_size < 0) throw ConfigError("--batch-size must be positive");
  if (o.bucket_window <= 0) throw ConfigError("--bucket-window must be positive");
  if (o.shard_size == 0) throw ConfigError("--shard-size must be positive");
  if (o.compress != "none" && o.compress != "zstd") throw ConfigError("--compress: expected none or zstd, got '" + o.compress + "'");
  arc::check_chat_choice(o.chat);  // only ARC datasets use --chat; a wrong value is refused for any dataset
  if (o.unit_samples < 0) throw ConfigError("--unit-samples must be positive");
  const bool out_s3 = storage::S3Location::is_s3_url(o.out);
  if (out_s3 && o.staging.empty())
    throw ConfigError("--out " + o.out + ": a run in object storage is written locally first: give --staging DIR");
  if (!out_s3 && !o.staging.empty()) throw ConfigError("--staging is for --out s3://...; with a local --out, the run is written there");
  if (out_s3 && !o.upload.empty()) throw ConfigError("--upload: --out is already s3://; give one of them");
  if (out_s3) storage::S3Location::parse(o.out, "--out");
  if (!o.upload.empty()) storage::S3Location::parse(o.upload, "--upload");
  const bool uploading = out_s3 || !o.upload.empty();
  if (!uploading && (o.delete_local || !o.s3_endpoint.empty()))
    throw ConfigError(std::string(o.delete_local ? "--delete-local" : "--s3-endpoint") + " needs --upload s3://... or --out s3://...");
  if (uploading && o.part_size < (uint64_t(5) << 20))
    throw ConfigError("--part-size " + std::to_string(o.part_size) + ": S3 needs parts of at least 5 MiB (5242880 bytes)");
  if (uploading && o.upload_parallel < 1) throw ConfigError("--upload-parallel must be at least 1");
}

std::string local_run_dir(const ExtractOptions& o) { return storage::S3Location::is_s3_url(o.out) ? o.staging : o.out; }
std::string upload_url(const ExtractOptions& o) { return storage::S3Location::is_s3_url(o.out) ? o.out : o.upload; }

std::vector<int64_t> parse_layers(const std::string& spec, int64_t num_layers) {
  std::set<int64_t> out;
  if (spec == "all" || spec.empty()) {
    for (int64_t i = 0; i < num_layers; ++i) out.insert(i);
    return {out.begin(), out.end()};
  }
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    std::string part = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t dash = part.find('-');
    int64_t lo = parse_index(part.substr(0, dash), spec);
    int64_t hi = dash == std::string::npos ? lo : parse_index(part.substr(dash + 1), spec);
    if (lo > hi) throw ConfigError("--layers '" + spec + "': range " + part + " is empty");
    if (hi >= num_layers)
      throw ConfigError("--layers '" + spec + "': block " + std::to_string(hi) + " does not exist (the model has " +
                        std::to_string(num_layers) + " blocks, 0-" + std::to_string(num_layers - 1) + ")");
    for (int64_t i = lo; i <= hi; ++i) out.insert(i);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return {out.begin(), out.end()};
}

std::vector<HookPoint> extract_hook_points(const ExtractOptions& o, const std::vector<HookPoint>& available,
                                           int64_t num_layers) {
  std::vector<HookPoint> per_token;
  for (const auto& h : available)
    if (h.per_token) per_token.push_back(h);
  std::set<std::string> names;
  if (!o.hooks.empty())
    for (const auto& n : select_hooks(o.hooks, per_token)) names.insert(n);
  if (!o.layers.empty() || o.hooks.empty())
    for (int64_t l : parse_layers(o.layers, num_layers)) names.insert(block_hook_name(l, BlockPoint::ResidPost));
  std::vector<HookPoint> out;
  for (const auto& h : per_token)
    if (names.count(h.name)) out.push_back(h);
  return out;
}

Json output_settings(const ExtractOptions& o, const std::vector<HookPoint>& points) {
  std::vector<std::string> hooks;
  for (const auto& p : points) hooks.push_back(p.name);
  Json j{{"format", o.format},
              {"text_field", o.text_field},
              {"max_samples", o.max_samples},
              {"prompt_template", o.prompt_template},
              {"augment", o.augment},
              {"seed", o.seed},
              {"max_seq_len", o.max_seq_len},
              {"skip_longer", o.skip_longer},
              {"hooks", hooks},
              {"exclude_special_tokens", o.exclude_special_tokens},
              {"exclude_bos", o.exclude_bos},
              {"dtype", o.dtype},
              {"out_dtype", o.out_dtype},
              {"batch_tokens", o.batch_tokens},
              {"batch_size", o.batch_size},
              {"bucket_window", o.bucket_window},
              {"shard_size", o.shard_size},
              {"compress", o.compress}};
  if (!o.weights_dtype.empty() && o.weights_dtype != o.dtype) j["weights_dtype"] = o.weights_dtype;
  if (o.unit_samples > 0) j["unit_samples"] = o.unit_samples;  // units start their own bucket windows: other batches
  return j;
}

}  // namespace fme

#include "pipelines/extract/options.h"

#include <algorithm>
#include <set>

#include "util/error.h"

namespace fme {
namespace {

int64_t parse_index(const std::string& s, const std::string& spec) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
    throw ConfigError("--layers '" + spec + "': '" + s + "' is not a block index");
  return std::stoll(s);
}

}  // namespace

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

Json output_settings(const ExtractOptions& o) {
  Json j{{"format", o.format},
              {"text_field", o.text_field},
              {"max_samples", o.max_samples},
              {"prompt_template", o.prompt_template},
              {"augment", o.augment},
              {"seed", o.seed},
              {"max_seq_len", o.max_seq_len},
              {"skip_longer", o.skip_longer},
              {"layers", o.layers},
              {"dtype", o.dtype},
              {"out_dtype", o.out_dtype},
              {"batch_tokens", o.batch_tokens},
              {"batch_size", o.batch_size},
              {"bucket_window", o.bucket_window},
              {"shard_size", o.shard_size},
              {"compress", o.compress}};
  if (!o.weights_dtype.empty() && o.weights_dtype != o.dtype) j["weights_dtype"] = o.weights_dtype;
  return j;
}

}  // namespace fme

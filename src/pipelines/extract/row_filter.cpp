#include "pipelines/extract/row_filter.h"

#include <filesystem>

#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json.h"

namespace fs = std::filesystem;

namespace fme {

int32_t declared_bos_id(const std::string& model_dir, const Tokenizer* tokenizer) {
  const fs::path config = fs::path(model_dir) / "config.json";
  if (fs::exists(config)) {
    Json c = read_json_file(config.string());
    if (c.contains("bos_token_id") && c["bos_token_id"].is_number_integer()) return c["bos_token_id"].get<int32_t>();
  }
  const fs::path tc = fs::path(model_dir) / "tokenizer_config.json";
  if (tokenizer && fs::exists(tc)) {
    Json t = read_json_file(tc.string());
    if (t.contains("bos_token")) {
      const Json& b = t["bos_token"];
      std::string content = b.is_string() ? b.get<std::string>() : b.is_object() ? b.value("content", "") : "";
      if (!content.empty()) return tokenizer->token_to_id(content);
    }
  }
  return -1;
}

RowFilter::RowFilter(bool exclude_special, bool exclude_bos, const Tokenizer* tokenizer, const std::string& model_dir) {
  if (exclude_special) {
    if (!tokenizer)
      throw ConfigError("--exclude-special-tokens: " + model_dir +
                        " has no tokenizer.json, which says which tokens are special");
    for (int32_t id : tokenizer->special_ids()) special_.insert(id);
  }
  if (exclude_bos) {
    bos_ = declared_bos_id(model_dir, tokenizer);
    if (bos_ < 0)
      throw ConfigError("--exclude-bos: " + model_dir +
                        "/config.json has no bos_token_id (nor tokenizer_config.json a bos_token): the model "
                        "declares no BOS token; use --exclude-special-tokens for [CLS]-style tokens");
  }
}

std::vector<int64_t> RowFilter::kept(const std::vector<int32_t>& ids) const {
  std::vector<int64_t> out;
  out.reserve(ids.size());
  for (size_t t = 0; t < ids.size(); ++t) {
    if (t == 0 && ids[t] == bos_) continue;
    if (special_.count(ids[t])) continue;
    out.push_back(static_cast<int64_t>(t));
  }
  return out;
}

}  // namespace fme

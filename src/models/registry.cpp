// The registry table: one row per architecture family. Adding a family adds its folder and one line here.
#include <algorithm>

#include "models/architecture.h"
#include "models/bert/bert.h"
#include "models/decoder/decoder.h"
#include "models/gpt2/gpt2.h"
#include "util/error.h"

namespace fme {

const std::vector<const Architecture*>& architectures() {
  static const std::vector<const Architecture*> table{&decoder_architecture(), &gpt2_architecture(), &bert_architecture()};
  return table;
}

const Architecture& architecture_for(const std::string& model_type) {
  for (const Architecture* a : architectures())
    if (std::find(a->model_types.begin(), a->model_types.end(), model_type) != a->model_types.end()) return *a;
  std::string known;
  for (const Architecture* a : architectures())
    for (const auto& t : a->model_types) known += (known.empty() ? "" : ", ") + t;
  throw ConfigError("model_type '" + model_type + "' is not supported (supported: " + known + ")");
}

const Architecture& architecture_for(const ModelConfig& config) { return architecture_for(model_type(config)); }

bool CheckpointNames::ignored(const std::string& name) const {
  auto starts = [&](const std::string& p) { return name.compare(0, p.size(), p) == 0; };
  auto ends = [&](const std::string& s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
  return std::any_of(ignored_prefixes.begin(), ignored_prefixes.end(), starts) ||
         std::any_of(ignored_suffixes.begin(), ignored_suffixes.end(), ends) ||
         std::find(ignored_names.begin(), ignored_names.end(), name) != ignored_names.end();
}

}  // namespace fme

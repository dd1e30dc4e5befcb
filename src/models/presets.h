// Named model shapes for `fme init`: tiny ones for tests and demos, and the real shapes benchmarks use.
#pragma once
#include <string>
#include <vector>

#include "models/model_config.h"

namespace fme {

struct Preset {
  std::string name;
  std::string description;
  ModelConfig config;
  std::string tokenizer;  // folder under assets/tokenizers
};

const std::vector<Preset>& presets();
// Throws ConfigError listing the known names.
const Preset& find_preset(const std::string& name);

}  // namespace fme

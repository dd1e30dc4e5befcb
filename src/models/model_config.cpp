#include "models/model_config.h"

#include <functional>
#include <vector>

#include "util/error.h"
#include "util/file.h"

namespace fme {
namespace {

// One row per family: the model_type values it parses.
struct ConfigFamily {
  std::vector<std::string> model_types;
  std::function<ModelConfig(const Json&, const std::string& type, const std::string& what)> parse;
};

const std::vector<ConfigFamily>& families() {
  static const std::vector<ConfigFamily> f{
      {{"llama", "mistral", "qwen2", "qwen3", "gemma2"},
       [](const Json& j, const std::string& type, const std::string& what) { return ModelConfig(parse_decoder_config(j, type, what)); }},
      {{"gpt2"}, [](const Json& j, const std::string&, const std::string& what) { return ModelConfig(parse_gpt2_config(j, what)); }},
      {{"bert"}, [](const Json& j, const std::string&, const std::string& what) { return ModelConfig(parse_bert_config(j, what)); }},
  };
  return f;
}

}  // namespace

ModelConfig parse_model_config(const Json& j, const std::string& what) {
  const std::string type = require<std::string>(j, "model_type", what);
  for (const ConfigFamily& f : families())
    for (const std::string& t : f.model_types)
      if (t == type) return f.parse(j, type, what);
  throw UnsupportedError(what + ": model_type " + describe_json(Json(type)) + " is not supported (supported: " +
                         supported_model_types() + ")");
}

ModelConfig load_model_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  return parse_model_config(parse_json_unique_keys(read_file(path), path), path);
}

std::string supported_model_types() {
  std::string s;
  for (const ConfigFamily& f : families())
    for (const std::string& t : f.model_types) s += (s.empty() ? "" : ", ") + t;
  return s;
}

std::string model_type(const ModelConfig& c) {
  if (const auto* d = std::get_if<DecoderConfig>(&c)) return d->model_type;
  if (std::holds_alternative<Gpt2Config>(c)) return "gpt2";
  return "bert";
}

Json to_json(const ModelConfig& config) {
  Json j = std::visit(
      [](const auto& c) {
        using C = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<C, DecoderConfig>) return decoder_config_json(c);
        else if constexpr (std::is_same_v<C, Gpt2Config>) return gpt2_config_json(c);
        else return bert_config_json(c);
      },
      config);
  j["torch_dtype"] = "float32";
  return j;
}

}  // namespace fme

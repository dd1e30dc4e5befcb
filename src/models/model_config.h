// A model's config.json, parsed: one config type per architecture family, each defined, parsed and
// serialised in its folder (src/models/<family>/config.h). This file only dispatches on model_type. It needs
// no torch, so the config fuzzer and config tests link it alone.
#pragma once
#include <string>
#include <variant>

#include "models/bert/config.h"
#include "models/decoder/config.h"
#include "models/gpt2/config.h"
#include "util/json.h"

namespace fme {

using ModelConfig = std::variant<DecoderConfig, BertConfig, Gpt2Config>;

// Parses a config.json document; `what` names the file in errors. An unknown model_type is an
// UnsupportedError listing the supported ones.
ModelConfig parse_model_config(const Json& j, const std::string& what);
// Reads DIR/config.json.
ModelConfig load_model_config(const std::string& dir);

// Serialises a config to an HF-compatible config.json document (with "model_type" and "architectures").
Json to_json(const ModelConfig& c);

std::string model_type(const ModelConfig& c);  // config.json's model_type

// The model_type values fme runs, for messages: "llama, mistral, qwen2, qwen3, gemma2, gpt2, bert".
std::string supported_model_types();

}  // namespace fme

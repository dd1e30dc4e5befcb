// Strict access to JSON fields: a missing or mistyped field is an error naming the file and the key.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "util/error.h"

namespace fme {

using Json = nlohmann::json;

// Parses `text` as JSON; a syntax error becomes FormatError naming `what` (usually the file path).
Json parse_json(const std::string& text, const std::string& what);
// Reads and parses a JSON file.
Json read_json_file(const std::string& path);

// Like parse_json, but stricter, for documents whose keys are names (safetensors headers, weight maps,
// configs): nlohmann silently keeps the last of two equal keys, which would hide a duplicated tensor,
// so a repeated key in one object is a FormatError, and so is nesting deeper than `max_depth` (no
// document fme reads nests deeply; the cap keeps hostile input from exhausting memory or stack).
// Messages: "<what> is not valid JSON: ...", "<what> has duplicate key 'k' in <where>".
Json parse_json_unique_keys(std::string_view text, const std::string& what, int max_depth = 256);

// A short one-line rendering of a value for error messages: scalars as JSON (long strings cut),
// containers by kind only, so a message never dumps (or recurses into) a huge document.
std::string describe_json(const Json& v);

// Returns j[key] converted to T; throws ConfigError "<what>: missing required key 'key'" or
// "<what>: key 'key' must be <type>, got <json>".
template <typename T>
T require(const Json& j, const std::string& key, const std::string& what);

// Returns j[key] as T when present and not null, else `fallback`. Wrong types still throw.
template <typename T>
T optional(const Json& j, const std::string& key, const T& fallback, const std::string& what);

}  // namespace fme

#include "util/json_impl.h"

#include "models/config_keys.h"

#include "util/error.h"
#include "util/json.h"

namespace fme {

void check_positive(int64_t v, const char* key, const std::string& what) {
  if (v <= 0) throw ConfigError(what + ": '" + key + "' must be positive, got " + std::to_string(v));
}

void check_positive(double v, const char* key, const std::string& what) {
  if (!(v > 0)) throw ConfigError(what + ": '" + key + "' must be positive, got " + describe_json(Json(v)));
}

void check_heads(int64_t hidden, int64_t heads, const std::string& what) {
  if (hidden % heads != 0)
    throw ConfigError(what + ": hidden_size " + std::to_string(hidden) + " is not divisible by num_attention_heads " +
                      std::to_string(heads));
}

void check_initializer_range(double v, const std::string& what) {
  if (v < 0) throw ConfigError(what + ": 'initializer_range' must not be negative, got " + describe_json(Json(v)));
}

void check_probability(double v, const char* key, const std::string& what) {
  if (!(v >= 0 && v < 1)) throw ConfigError(what + ": '" + key + "' must be a probability in [0, 1), got " + describe_json(Json(v)));
}

}  // namespace fme

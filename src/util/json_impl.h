// Template bodies for util/json.h.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace fme {
namespace json_detail {

template <typename T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bool>) return "a boolean";
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else if constexpr (std::is_floating_point_v<T>) return "a number";
  else if constexpr (std::is_same_v<T, std::string>) return "a string";
  else return "a value of the expected type";
}

// Integral T: accepts JSON integers and integral floats (64.0, as some exporters write), but only when
// the value fits T; a blind cast of 1e300 or 2^64-1 would be undefined or wrap to a negative size.
template <typename T>
bool integral_fits(const Json& v) {
  using L = std::numeric_limits<T>;
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(L::max());
  if (v.is_number_integer()) {
    int64_t x = v.get<int64_t>();
    if constexpr (std::is_signed_v<T>) return x >= static_cast<int64_t>(L::min()) && x <= static_cast<int64_t>(L::max());
    else return x >= 0 && static_cast<uint64_t>(x) <= static_cast<uint64_t>(L::max());
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    // max()+1 is a power of two, exact in a double; comparing against it avoids rounding max() up.
    const double upper = static_cast<double>(L::max() / 2 + 1) * 2.0;
    return std::isfinite(d) && d == std::floor(d) && d >= static_cast<double>(L::min()) && d < upper;
  }
  return false;
}

template <typename T>
bool has_type(const Json& v) {
  if constexpr (std::is_same_v<T, bool>) return v.is_boolean();
  else if constexpr (std::is_integral_v<T>) return v.is_number();
  else if constexpr (std::is_floating_point_v<T>) return v.is_number();
  else if constexpr (std::is_same_v<T, std::string>) return v.is_string();
  else return true;
}

template <typename T>
T convert(const Json& v, const std::string& key, const std::string& what) {
  if (!has_type<T>(v))
    throw ConfigError(what + ": key '" + key + "' must be " + type_name<T>() + ", got " + describe_json(v));
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (v.is_number_float() && v.get<double>() != std::floor(v.get<double>()))
      throw ConfigError(what + ": key '" + key + "' must be an integer, got " + describe_json(v));
    if (!integral_fits<T>(v))
      throw ConfigError(what + ": key '" + key + "' is out of range, got " + describe_json(v));
    if (v.is_number_float()) return static_cast<T>(v.get<double>());
  }
  try {
    return v.get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(what + ": key '" + key + "': " + e.what());
  }
}

}  // namespace json_detail

template <typename T>
T require(const Json& j, const std::string& key, const std::string& what) {
  if (!j.is_object()) throw ConfigError(what + ": expected a JSON object");
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) throw ConfigError(what + ": missing required key '" + key + "'");
  return json_detail::convert<T>(*it, key, what);
}

template <typename T>
T optional(const Json& j, const std::string& key, const T& fallback, const std::string& what) {
  if (!j.is_object()) throw ConfigError(what + ": expected a JSON object");
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return json_detail::convert<T>(*it, key, what);
}

}  // namespace fme

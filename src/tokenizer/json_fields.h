// Strict reading of tokenizer.json fields: every error names the file, the dotted JSON path of the field,
// what was expected and what was found (FormatError), or the unsupported type (UnsupportedError).
#pragma once
#include <cstdint>
#include <string>

#include "util/error.h"
#include "util/json.h"

namespace fme::tok {

class JsonFields {
 public:
  explicit JsonFields(std::string file) : file_(std::move(file)) {}
  const std::string& file() const { return file_; }

  [[noreturn]] void fail(const std::string& path, const std::string& msg) const {
    throw FormatError(file_ + ": field '" + path + "': " + msg);
  }
  [[noreturn]] void unsupported(const std::string& path, const std::string& type, const std::string& supported) const {
    throw UnsupportedError(file_ + ": field '" + path + "': unsupported type '" + type + "' (supported: " +
                           supported + ")");
  }

  // A short description of a JSON value for messages.
  static std::string found(const Json& v) {
    std::string d = v.dump();
    if (d.size() > 60) d = d.substr(0, 57) + "...";
    return std::string(v.type_name()) + " " + d;
  }

  // obj[key]; missing or null is an error.
  const Json& get(const Json& obj, const char* key, const std::string& path) const {
    if (!obj.is_object()) fail(path, "expected an object, found " + found(obj));
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) fail(join(path, key), "missing, expected a value");
    return *it;
  }
  // obj[key] or nullptr when absent or null.
  static const Json* find(const Json& obj, const char* key) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
  }
  const Json& get_object(const Json& obj, const char* key, const std::string& path) const {
    const Json& v = get(obj, key, path);
    if (!v.is_object()) fail(join(path, key), "expected an object, found " + found(v));
    return v;
  }
  const Json& get_array(const Json& obj, const char* key, const std::string& path) const {
    const Json& v = get(obj, key, path);
    if (!v.is_array()) fail(join(path, key), "expected an array, found " + found(v));
    return v;
  }
  std::string get_string(const Json& obj, const char* key, const std::string& path) const {
    const Json& v = get(obj, key, path);
    if (!v.is_string()) fail(join(path, key), "expected a string, found " + found(v));
    return v.get<std::string>();
  }
  std::string string_or(const Json& obj, const char* key, const std::string& path, const std::string& fallback) const {
    const Json* v = find(obj, key);
    if (!v) return fallback;
    if (!v->is_string()) fail(join(path, key), "expected a string, found " + found(*v));
    return v->get<std::string>();
  }
  bool bool_or(const Json& obj, const char* key, const std::string& path, bool fallback) const {
    const Json* v = find(obj, key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(join(path, key), "expected a boolean, found " + found(*v));
    return v->get<bool>();
  }
  int64_t int_or(const Json& obj, const char* key, const std::string& path, int64_t fallback) const {
    const Json* v = find(obj, key);
    if (!v) return fallback;
    return as_int(*v, join(path, key));
  }
  int64_t as_int(const Json& v, const std::string& path) const {
    if (!v.is_number_integer()) fail(path, "expected an integer, found " + found(v));
    return v.get<int64_t>();
  }
  // A token id: an integer in [0, kMaxId).
  int32_t as_id(const Json& v, const std::string& path) const {
    int64_t id = as_int(v, path);
    if (id < 0 || id >= kMaxId) fail(path, "expected a token id in [0, " + std::to_string(kMaxId) + "), found " + found(v));
    return static_cast<int32_t>(id);
  }

  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  // Ids index dense tables, so an absurd id in a hostile file must not become a huge allocation.
  static constexpr int64_t kMaxId = int64_t(1) << 24;

 private:
  std::string file_;
};

}  // namespace fme::tok

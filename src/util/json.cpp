// JSON parsing with errors that name the document, plus the strict (duplicate-key-rejecting) variant.
#include "util/json.h"

#include <unordered_set>
#include <vector>

#include "util/file.h"

namespace fme {
namespace {

// nlohmann's parse errors quote the last token, which for a hostile document can be megabytes long;
// messages stay one readable line.
std::string short_reason(const std::string& s) {
  constexpr size_t kMax = 240;
  if (s.size() <= kMax) return s;
  return s.substr(0, kMax) + "...";
}

}  // namespace

Json parse_json(const std::string& text, const std::string& what) {
  // exception, not just parse_error: a number too large for a double (1e999) is an out_of_range.
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(what + ": not valid JSON: " + short_reason(e.what()));
  }
}

Json read_json_file(const std::string& path) { return parse_json(read_file(path), path); }

Json parse_json_unique_keys(std::string_view text, const std::string& what, int max_depth) {
  // One frame per open container; objects remember their keys so far and the current key, which
  // also names where a nested duplicate sits.
  struct Frame {
    bool is_object;
    std::string key;
    std::unordered_set<std::string> keys;
  };
  std::vector<Frame> stack;
  auto where = [&]() {
    if (stack.size() <= 1) return std::string("the top-level object");
    std::string p;
    for (size_t i = 0; i + 1 < stack.size(); ++i) p += stack[i].is_object ? "/" + stack[i].key : std::string("/[]");
    return "the object at " + p;
  };
  auto push = [&](bool is_object) {
    if (static_cast<int>(stack.size()) >= max_depth)
      throw FormatError(what + " nests deeper than " + std::to_string(max_depth) + " levels");
    stack.push_back(Frame{is_object, {}, {}});
  };
  Json::parser_callback_t cb = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start: push(true); break;
      case Json::parse_event_t::array_start: push(false); break;
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        if (!stack.empty()) stack.pop_back();
        break;
      case Json::parse_event_t::key: {
        if (stack.empty()) break;
        const std::string& k = parsed.get_ref<const std::string&>();
        if (!stack.back().keys.insert(k).second)
          throw FormatError(what + " has duplicate key '" + short_reason(k) + "' in " + where());
        stack.back().key = k;
        break;
      }
      case Json::parse_event_t::value: break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), cb);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for 1e999
    throw FormatError(what + " is not valid JSON: " + short_reason(e.what()));
  }
}

std::string describe_json(const Json& v) {
  switch (v.type()) {
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: {
      std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
      return s.size() > 82 ? s.substr(0, 80) + "...\"" : s;
    }
    default: return v.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
}

}  // namespace fme

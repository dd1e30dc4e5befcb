#include "models/hook_select.h"

#include <fnmatch.h>

#include <set>

#include "util/error.h"

namespace fme {
namespace {

// Splits at the commas outside braces.
std::vector<std::string> split_top_level(const std::string& s, const std::string& option) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char c : s) {
    if (c == '{') ++depth;
    if (c == '}' && --depth < 0) throw ConfigError(option + " '" + s + "': unmatched '}'");
    if (c == ',' && depth == 0) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (depth != 0) throw ConfigError(option + " '" + s + "': unmatched '{'");
  out.push_back(cur);
  return out;
}

bool all_digits(const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; }

}  // namespace

std::vector<std::string> expand_braces(const std::string& pattern, const std::string& option) {
  const size_t open = pattern.find('{');
  if (open == std::string::npos) {
    if (pattern.find('}') != std::string::npos) throw ConfigError(option + " '" + pattern + "': unmatched '}'");
    return {pattern};
  }
  int depth = 0;
  size_t close = std::string::npos;
  for (size_t i = open; i < pattern.size(); ++i) {
    if (pattern[i] == '{') ++depth;
    if (pattern[i] == '}' && --depth == 0) {
      close = i;
      break;
    }
  }
  if (close == std::string::npos) throw ConfigError(option + " '" + pattern + "': unmatched '{'");
  const std::string head = pattern.substr(0, open), body = pattern.substr(open + 1, close - open - 1),
                    tail = pattern.substr(close + 1);
  std::vector<std::string> choices;
  const size_t dots = body.find("..");
  if (dots != std::string::npos && body.find(',') == std::string::npos) {
    const std::string a = body.substr(0, dots), b = body.substr(dots + 2);
    if (!all_digits(a) || !all_digits(b) || a.size() > 9 || b.size() > 9)
      throw ConfigError(option + " '" + pattern + "': expected a range {a..b} of block numbers, got {" + body + "}");
    const long lo = std::stol(a), hi = std::stol(b);
    if (lo > hi) throw ConfigError(option + " '" + pattern + "': range {" + body + "} is empty");
    for (long i = lo; i <= hi; ++i) choices.push_back(std::to_string(i));
  } else {
    choices = split_top_level(body, option);
  }
  std::vector<std::string> out;
  for (const auto& c : choices)
    for (const auto& rest : expand_braces(head + c + tail, option)) out.push_back(rest);
  return out;
}

std::string describe_hooks(const std::vector<HookPoint>& available) {
  int64_t blocks = 0;
  std::vector<std::string> suffixes, others;
  std::set<std::string> seen;
  for (const auto& h : available) {
    if (h.point >= 0) {
      blocks = std::max(blocks, h.block + 1);
      const std::string s = block_point_suffix(static_cast<BlockPoint>(h.point));
      if (seen.insert(s).second) suffixes.push_back(s);
    } else {
      others.push_back(h.name);
    }
  }
  std::string out;
  if (blocks > 0) {
    out = "blocks.{0.." + std::to_string(blocks - 1) + "}.{";
    for (size_t i = 0; i < suffixes.size(); ++i) out += (i ? "," : "") + suffixes[i];
    out += "}";
  }
  for (const auto& o : others) out += (out.empty() ? "" : ", ") + o;
  return out;
}

std::vector<std::string> select_hooks(const std::string& spec, const std::vector<HookPoint>& available,
                                      const std::string& option) {
  std::vector<bool> chosen(available.size(), false);
  for (const auto& part : split_top_level(spec, option)) {
    if (part.empty()) throw ConfigError(option + " '" + spec + "': empty pattern");
    for (const auto& pat : expand_braces(part, option)) {
      bool matched = false;
      for (size_t i = 0; i < available.size(); ++i)
        if (::fnmatch(pat.c_str(), available[i].name.c_str(), 0) == 0) chosen[i] = matched = true;
      if (!matched)
        throw ConfigError(option + ": '" + pat + "' matches no hook point of this model; valid points: " +
                          describe_hooks(available));
    }
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < available.size(); ++i)
    if (chosen[i]) out.push_back(available[i].name);
  return out;
}

}  // namespace fme

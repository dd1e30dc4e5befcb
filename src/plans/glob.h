// Glob patterns over dotted module paths ("encoder.layer.0.attention.self.query"), the only address a
// plan uses. Deliberately tiny: `*` matches any run of characters INCLUDING dots (and the empty run),
// `?` matches exactly one character (a dot too), everything else matches itself. There is no escaping,
// no character classes and no `**`: module paths never contain `*` or `?`, and one wildcard that crosses
// dots is what lets `*.output.dense` reach every layer.
#pragma once
#include <string_view>

namespace fme::plans {

// True when `pattern` matches the WHOLE of `path` (anchored at both ends).
// Runs in O(|pattern| * |path|) at worst with no allocation (greedy star with one backtrack point).
bool glob_match(std::string_view pattern, std::string_view path);

}  // namespace fme::plans

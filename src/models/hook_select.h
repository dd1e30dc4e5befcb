// Choosing hook points by pattern, as `--hooks` takes them:
//   'blocks.{10..23}.hook_resid_post,blocks.12.hook_mlp_out'   comma-separated patterns
//   {a..b}  a numeric range;  {x,y}  alternatives;  * and ?  globs (fnmatch: '*' also crosses dots)
// A pattern that matches no point is a ConfigError naming the valid ones. The result follows the model's
// forward order, each point once.
#pragma once
#include <string>
#include <vector>

#include "models/hook_points.h"

namespace fme {

std::vector<std::string> select_hooks(const std::string& spec, const std::vector<HookPoint>& available,
                                      const std::string& option = "--hooks");

// The brace expansion of one pattern ("blocks.{1..3}.hook_{z,q}" -> 6 patterns); ConfigError on bad braces.
std::vector<std::string> expand_braces(const std::string& pattern, const std::string& option = "--hooks");

// A short description of `available` for messages: "blocks.{0..23}.{hook_resid_pre, ...}, ln_final.hook_normalized".
std::string describe_hooks(const std::vector<HookPoint>& available);

}  // namespace fme

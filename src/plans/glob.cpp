// Anchored glob matching for plan patterns; see glob.h for the (deliberately small) syntax.
#include "plans/glob.h"

namespace fme::plans {

bool glob_match(std::string_view pattern, std::string_view path) {
  // Classic two-pointer wildcard matching: on a mismatch, retry from the most recent `*` with one more
  // character swallowed. Only the latest star needs remembering because `*` crosses every character
  // (dots included), so an earlier star can never need to swallow more than the later one already can.
  size_t p = 0, s = 0;
  size_t star = std::string_view::npos;  // position of the last `*` seen in pattern
  size_t resume = 0;                     // where in path that star's run currently ends
  while (s < path.size()) {
    // Check `*` before literal equality so a (theoretical) `*` in path is not matched literally.
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = s;
    } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == path[s])) {
      ++p;
      ++s;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      s = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;  // trailing stars match the empty run
  return p == pattern.size();
}

}  // namespace fme::plans

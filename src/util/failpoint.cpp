#include "util/failpoint.h"

#include <csignal>
#include <cstdlib>
#include <mutex>
#include <string>

namespace fme {
namespace {

struct Armed {
  std::string name;  // empty: none armed
  long hits_left = 1;
};

Armed& armed() {
  static Armed a = [] {
    Armed r;
    const char* env = std::getenv("FME_FAILPOINT");
    if (!env || !*env) return r;
    std::string spec(env);
    const size_t at = spec.rfind('@');
    if (at != std::string::npos) {
      r.hits_left = std::strtol(spec.c_str() + at + 1, nullptr, 10);
      spec.resize(at);
    }
    r.name = spec;
    return r;
  }();
  return a;
}

}  // namespace

void failpoint(const char* name) {
  Armed& a = armed();
  if (a.name.empty() || a.name != name) return;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (--a.hits_left <= 0) std::raise(SIGKILL);
}

}  // namespace fme

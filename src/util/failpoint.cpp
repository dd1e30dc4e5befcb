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
  bool stop = false;  // SIGSTOP (once) instead of SIGKILL
};

Armed& armed() {
  static Armed a = [] {
    Armed r;
    const char* env = std::getenv("FME_FAILPOINT");
    if (!env || !*env) return r;
    std::string spec(env);
    const std::string stop = ":stop";
    if (spec.size() > stop.size() && spec.compare(spec.size() - stop.size(), stop.size(), stop) == 0) {
      r.stop = true;
      spec.resize(spec.size() - stop.size());
    }
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
  if (--a.hits_left != 0) return;
  std::raise(a.stop ? SIGSTOP : SIGKILL);
}

}  // namespace fme

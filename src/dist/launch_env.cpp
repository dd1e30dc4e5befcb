// Reads the launcher's environment variables into a LaunchEnv; see launch_env.h for the rules.
#include "dist/launch_env.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <optional>

#include "util/error.h"

extern char** environ;

namespace fme::dist {

namespace {

using Env = std::map<std::string, std::string>;

std::optional<std::string> lookup(const Env& env, const std::string& name) {
  auto it = env.find(name);
  if (it == env.end()) return std::nullopt;
  return it->second;
}

// Parses a whole decimal integer; leading/trailing spaces are tolerated because shells and job scripts
// sometimes leave them, anything else (empty, "2x", "1.5", overflow) is an error naming the variable.
int parse_int(const std::string& name, const std::string& value, int min_value) {
  size_t b = value.find_first_not_of(" \t");
  size_t e = value.find_last_not_of(" \t");
  std::string v = b == std::string::npos ? std::string() : value.substr(b, e - b + 1);
  const char* p = v.c_str();
  char* end = nullptr;
  errno = 0;
  long n = v.empty() ? 0 : std::strtol(p, &end, 10);
  if (v.empty() || end != p + v.size() || errno == ERANGE || n > INT_MAX || n < INT_MIN)
    throw ConfigError("environment variable " + name + " must be an integer, got '" + value + "'");
  if (n < min_value)
    throw ConfigError("environment variable " + name + " must be at least " + std::to_string(min_value) +
                      ", got " + std::to_string(n));
  return static_cast<int>(n);
}

struct Style {
  Launcher launcher;
  const char* rank;
  const char* world;
  const char* local_rank;
};

constexpr Style kStyles[] = {
    {Launcher::Torchrun, "RANK", "WORLD_SIZE", "LOCAL_RANK"},
    {Launcher::Mpirun, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    {Launcher::Slurm, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
};

}  // namespace

const char* launcher_name(Launcher l) {
  switch (l) {
    case Launcher::None: return "none";
    case Launcher::Torchrun: return "torchrun";
    case Launcher::Mpirun: return "mpirun";
    case Launcher::Slurm: return "srun";
  }
  return "?";
}

std::string first_slurm_host(const std::string& nodelist) {
  std::string host;
  size_t i = 0;
  while (i < nodelist.size() && nodelist[i] != ',' && nodelist[i] != '[') host += nodelist[i++];
  if (i < nodelist.size() && nodelist[i] == '[') {
    // A bracketed range list: the first number of its first item, with its zero padding kept.
    ++i;
    while (i < nodelist.size() && nodelist[i] != ',' && nodelist[i] != '-' && nodelist[i] != ']')
      host += nodelist[i++];
    while (i < nodelist.size() && nodelist[i] != ']') ++i;
    if (i < nodelist.size()) ++i;
    while (i < nodelist.size() && nodelist[i] != ',' && nodelist[i] != '[') host += nodelist[i++];
  }
  return host;
}

LaunchEnv parse_launch_env(const Env& env) {
  LaunchEnv out;
  const Style* style = nullptr;
  for (const Style& s : kStyles) {
    if (lookup(env, s.rank) || lookup(env, s.world)) {
      style = &s;
      break;
    }
  }
  if (style) {
    auto rank = lookup(env, style->rank);
    auto world = lookup(env, style->world);
    // Half a pair is a broken launch script, not a single process: say which half is missing.
    if (!rank) throw ConfigError(std::string("environment variable ") + style->world + " is set but " + style->rank + " is not");
    if (!world) throw ConfigError(std::string("environment variable ") + style->rank + " is set but " + style->world + " is not");
    out.launcher = style->launcher;
    out.world_size = parse_int(style->world, *world, 1);
    out.rank = parse_int(style->rank, *rank, 0);
    if (out.rank >= out.world_size)
      throw ConfigError(std::string("environment variable ") + style->rank + "=" + std::to_string(out.rank) +
                        " is out of range for " + style->world + "=" + std::to_string(out.world_size));
    auto local = lookup(env, style->local_rank);
    out.local_rank = local ? parse_int(style->local_rank, *local, 0) : out.rank;
  }

  if (auto addr = lookup(env, "MASTER_ADDR")) {
    if (addr->empty() || addr->find_first_of(" \t/") != std::string::npos)
      throw ConfigError("environment variable MASTER_ADDR must be a host name or address, got '" + *addr + "'");
    out.master_addr = *addr;
  } else if (out.launcher == Launcher::Slurm) {
    auto nodes = lookup(env, "SLURM_JOB_NODELIST");
    if (!nodes) nodes = lookup(env, "SLURM_NODELIST");
    if (nodes) {
      std::string host = first_slurm_host(*nodes);
      if (!host.empty()) out.master_addr = host;
    }
  }
  if (auto port = lookup(env, "MASTER_PORT")) {
    out.master_port = parse_int("MASTER_PORT", *port, 1);
    if (out.master_port > 65535)
      throw ConfigError("environment variable MASTER_PORT must be a port (1-65535), got '" + *port + "'");
  }
  return out;
}

LaunchEnv launch_env_from_environment() {
  Env env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return parse_launch_env(env);
}

int free_loopback_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

int run_local_world(int world, const std::string& command, const std::string& log_prefix, bool merge_stderr) {
  const int port = free_loopback_port();
  std::string script = "(";
  for (int r = 0; r < world; ++r) {
    const std::string env = world > 1 ? "RANK=" + std::to_string(r) + " WORLD_SIZE=" + std::to_string(world) +
                                            " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " "
                                      : "";
    const std::string log = log_prefix + std::to_string(r);
    script += env + command + " >" + log + (merge_stderr ? " 2>&1" : " 2>" + log + ".err") + " & ";
  }
  script += "worst=0; for j in $(jobs -p); do wait $j || worst=$?; done; exit $worst)";
  const int status = std::system(("bash -c '" + script + "'").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace fme::dist

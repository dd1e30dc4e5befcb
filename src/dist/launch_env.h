// Where this process sits in a multi-process launch: rank, world size, local rank and the rendezvous
// address, read from the environment variables that the usual launchers set. Torch-free, so the CLI can
// look at it (e.g. to decide whether to start the distributed runtime at all) without touching libtorch.
//
// Launcher styles, first match wins:
//   torchrun / manual   RANK, WORLD_SIZE, LOCAL_RANK (optional)
//   mpirun (Open MPI)   OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK (optional)
//   srun (SLURM)        SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (optional)
//   nothing set         a single process: rank 0 of 1, no network is ever used.
// A missing local rank defaults to the rank (the one-machine case).
//
// The rendezvous address is MASTER_ADDR / MASTER_PORT for every style (torchrun always sets them).
// Defaults when they are unset: MASTER_PORT 29500 (the c10d default); MASTER_ADDR is the first host of
// SLURM_JOB_NODELIST (or SLURM_NODELIST) under srun, and 127.0.0.1 otherwise, so a multi-node mpirun
// must export MASTER_ADDR itself (e.g. `mpirun -x MASTER_ADDR=node01 ...`).
//
// Malformed or inconsistent values throw ConfigError naming the variable.
#pragma once
#include <map>
#include <string>

namespace fme::dist {

enum class Launcher { None, Torchrun, Mpirun, Slurm };

const char* launcher_name(Launcher l);  // "none", "torchrun", "mpirun", "srun"

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  Launcher launcher = Launcher::None;

  bool is_distributed() const { return world_size > 1; }
};

// Reads the process environment (getenv).
LaunchEnv launch_env_from_environment();

// Same rules over an explicit variable -> value map (unset variables are absent); what tests use.
LaunchEnv parse_launch_env(const std::map<std::string, std::string>& env);

// First host of a SLURM hostlist: "node[01-04,07],gpu3" -> "node01", "a,b" -> "a", "x" -> "x".
std::string first_slurm_host(const std::string& nodelist);

// A loopback TCP port that was free a moment ago (bind 127.0.0.1:0 and read what the kernel chose), for
// launching a local job; -1 if none could be bound.
int free_loopback_port();

// Runs `command` as `world` local processes meeting on a free loopback port (torchrun-style env vars; world 1
// runs it plainly). Rank r's stdout goes to `log_prefix` + r, stderr too when `merge_stderr`, else to
// `log_prefix` + r + ".err". Returns the worst exit status (0 when all succeed).
int run_local_world(int world, const std::string& command, const std::string& log_prefix, bool merge_stderr);

}  // namespace fme::dist

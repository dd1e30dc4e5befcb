// Tests of Dist: single-process no-ops in-process, and real collectives across 2 and 4 processes by
// exec'ing dist_worker (see worker.cpp) with torchrun-style env vars on 127.0.0.1 and a free port.
// Every multi-process run has a deadline after which the workers are killed, so no test can hang.
#include <gtest/gtest.h>

#include <ATen/core/Tensor.h>
#include <ATen/ops/full.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "dist/launch_env.h"
#include "dist/process_group.h"

namespace fme::dist {
namespace {


struct WorkerResult {
  int rank = 0;
  int status = -1;  // exit code, or -1 if killed / signalled
  std::string output;
};

struct RunResult {
  std::vector<WorkerResult> workers;
  double seconds = 0;
  int port = 0;
};

// Starts dist_worker SCENARIO for each rank in `ranks` of a world of `world`, waits at most deadline_s.
RunResult run_workers(const std::string& scenario, int world, const std::vector<int>& ranks, int timeout_ms,
                      const std::string& mesh = "", int deadline_s = 90) {
  RunResult res;
  res.port = free_loopback_port();
  auto start = std::chrono::steady_clock::now();
  std::vector<pid_t> pids;
  std::vector<std::string> logs;
  const std::string timeout = std::to_string(timeout_ms);
  for (int rank : ranks) {
    char tmpl[] = "/tmp/fme_dist_worker_XXXXXX";
    int log = mkstemp(tmpl);
    logs.push_back(tmpl);
    // The child's environment is built here, in the parent: between fork and exec only
    // async-signal-safe calls are allowed (setenv may deadlock on a lock held by another thread).
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      std::string kv(*e);
      std::string name = kv.substr(0, kv.find('='));
      bool drop = false;
      for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "OMP_NUM_THREADS",
                            "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS",
                            "GLOO_SOCKET_IFNAME"})
        drop = drop || name == v;
      if (!drop) env.push_back(kv);
    }
    env.push_back("RANK=" + std::to_string(rank));
    env.push_back("WORLD_SIZE=" + std::to_string(world));
    env.push_back("LOCAL_RANK=" + std::to_string(rank));
    env.push_back("MASTER_ADDR=127.0.0.1");
    env.push_back("MASTER_PORT=" + std::to_string(res.port));
    env.push_back("OMP_NUM_THREADS=1");  // 4 workers share 2 cores
    std::vector<char*> envp;
    for (auto& kv : env) envp.push_back(kv.data());
    envp.push_back(nullptr);
    std::vector<char*> argv{const_cast<char*>(FME_DIST_WORKER), const_cast<char*>(scenario.c_str()),
                            const_cast<char*>(timeout.c_str()), const_cast<char*>(mesh.c_str()), nullptr};
    pid_t pid = fork();
    if (pid == 0) {
      dup2(log, 1);
      dup2(log, 2);
      execve(FME_DIST_WORKER, argv.data(), envp.data());
      _exit(127);
    }
    close(log);
    pids.push_back(pid);
  }
  std::vector<int> status(pids.size(), -1);
  std::vector<bool> done(pids.size(), false);
  size_t left = pids.size();
  while (left > 0) {
    for (size_t i = 0; i < pids.size(); ++i) {
      if (done[i]) continue;
      int st = 0;
      if (waitpid(pids[i], &st, WNOHANG) == pids[i]) {
        done[i] = true;
        --left;
        status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      }
    }
    if (left > 0 && std::chrono::steady_clock::now() - start > std::chrono::seconds(deadline_s)) {
      for (size_t i = 0; i < pids.size(); ++i)
        if (!done[i]) {
          kill(pids[i], SIGKILL);
          waitpid(pids[i], nullptr, 0);
          done[i] = true;
        }
      left = 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (size_t i = 0; i < pids.size(); ++i) {
    std::ifstream in(logs[i]);
    std::stringstream ss;
    ss << in.rdbuf();
    unlink(logs[i].c_str());
    res.workers.push_back({ranks[i], status[i], ss.str()});
  }
  return res;
}

std::vector<int> all_ranks(int n) {
  std::vector<int> r(n);
  for (int i = 0; i < n; ++i) r[i] = i;
  return r;
}

void expect_all_ok(const RunResult& res) {
  for (const auto& w : res.workers)
    EXPECT_EQ(w.status, 0) << "rank " << w.rank << " output:\n" << w.output;
}

TEST(Dist, SingleProcessIsNoOpWithoutNetwork) {
  LaunchEnv env;  // rank 0 of 1
  // A port nobody serves: a single process must not touch it.
  env.master_port = 1;
  auto d = Dist::init(env, Mesh::parse("tp=1", 1), std::chrono::milliseconds(100));
  EXPECT_EQ(d->rank(), 0);
  EXPECT_EQ(d->world(), 1);
  EXPECT_EQ(d->size("tp"), 1);
  EXPECT_EQ(d->group_ranks("tp"), std::vector<int>{0});
  at::Tensor t = at::full({2, 3}, 1.5, at::TensorOptions().dtype(at::kBFloat16));
  d->all_reduce_sum(t);
  d->all_reduce_sum(t, "tp");
  d->broadcast(t, 0);
  d->barrier();
  EXPECT_TRUE(at::full({2, 3}, 1.5, at::TensorOptions().dtype(at::kBFloat16)).equal(t));
  at::Tensor g = d->all_gather(t, 1, "tp");
  EXPECT_EQ(g.sizes(), t.sizes());
  EXPECT_THROW(d->broadcast(t, 1), ConfigError);
  EXPECT_THROW(d->all_gather(t, 2), ShapeError);
}

TEST(Dist, MeshWorldSizeMismatchIsConfigError) {
  LaunchEnv env;
  env.rank = 0;
  env.world_size = 2;
  Mesh mesh{{{"dp", 2}, {"tp", 2}}};
  try {
    Dist::init(env, mesh, std::chrono::milliseconds(500));
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "mesh dp=2,tp=2 has 4 processes but WORLD_SIZE is 2");
  }
}

TEST(Dist, MeshMismatchInWorkerExitsWithMessage) {
  auto res = run_workers("join", 2, all_ranks(2), 5000, "dp=2,tp=2", 30);
  for (const auto& w : res.workers) {
    EXPECT_EQ(w.status, 2) << w.output;
    EXPECT_NE(w.output.find("mesh dp=2,tp=2 has 4 processes but WORLD_SIZE is 2"), std::string::npos) << w.output;
  }
}

TEST(Dist, CollectivesAcrossTwoProcesses) { expect_all_ok(run_workers("world", 2, all_ranks(2), 30000)); }

TEST(Dist, CollectivesAcrossFourProcesses) { expect_all_ok(run_workers("world", 4, all_ranks(4), 30000)); }

TEST(Dist, CollectivesAcrossFourProcessesWithTpMesh) {
  // tp spans the whole world: the axis group is the world group.
  expect_all_ok(run_workers("world", 4, all_ranks(4), 30000, "tp=4"));
}

TEST(Dist, PerAxisGroupsOnDpTpMesh) { expect_all_ok(run_workers("mesh", 4, all_ranks(4), 30000, "dp=2,tp=2")); }

TEST(Dist, MissingPeerTimesOutWithMessage) {
  // Only rank 0 of 2 starts; with a 2 s timeout it must fail soon, not hang.
  auto res = run_workers("join", 2, {0}, 2000, "", 30);
  ASSERT_EQ(res.workers.size(), 1u);
  const auto& w = res.workers[0];
  EXPECT_EQ(w.status, 2) << w.output;
  std::string want = "rendezvous: only 1 of 2 processes arrived at 127.0.0.1:" + std::to_string(res.port) + " within 2 s";
  EXPECT_NE(w.output.find(want), std::string::npos) << w.output;
  EXPECT_LT(res.seconds, 10.0);
}

TEST(Dist, MissingRankZeroTimesOutWithMessage) {
  // Only rank 1 starts: nobody serves the store.
  auto res = run_workers("join", 2, {1}, 2000, "", 30);
  ASSERT_EQ(res.workers.size(), 1u);
  const auto& w = res.workers[0];
  EXPECT_EQ(w.status, 2) << w.output;
  EXPECT_NE(w.output.find("rendezvous: rank 1 could not reach rank 0 at 127.0.0.1:" + std::to_string(res.port) +
                          " within 2 s"),
            std::string::npos)
      << w.output;
  EXPECT_LT(res.seconds, 10.0);
}

TEST(Dist, PeerDyingMidRunFailsTheCollective) {
  // A 5 s collective timeout; the dead peer's closed sockets usually fail it sooner.
  auto res = run_workers("peer_dies", 2, all_ranks(2), 5000, "", 30);
  ASSERT_EQ(res.workers.size(), 2u);
  EXPECT_EQ(res.workers[1].status, 0) << res.workers[1].output;
  EXPECT_EQ(res.workers[0].status, 2) << res.workers[0].output;
  EXPECT_NE(res.workers[0].output.find("all_reduce_sum over group world (ranks 0,1) failed"), std::string::npos)
      << res.workers[0].output;
  EXPECT_EQ(res.workers[0].output.find(".cc:"), std::string::npos) << "no library source locations: " << res.workers[0].output;
  EXPECT_LT(res.seconds, 15.0);
}

TEST(Dist, ThreeOfFourArrivedIsReported) {
  auto res = run_workers("join", 4, {0, 1, 2}, 2000, "", 30);
  for (const auto& w : res.workers) {
    EXPECT_EQ(w.status, 2) << w.output;
    EXPECT_NE(w.output.find("only 3 of 4 processes arrived"), std::string::npos) << w.output;
  }
  EXPECT_LT(res.seconds, 10.0);
}

}  // namespace
}  // namespace fme::dist

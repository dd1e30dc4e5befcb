// Tests of launch_env: the three launcher styles, defaults, and malformed values.
#include <gtest/gtest.h>

#include <cstdlib>

#include "dist/launch_env.h"
#include "util/error.h"

namespace fme::dist {
namespace {

using Env = std::map<std::string, std::string>;

std::string error_of(const Env& env) {
  try {
    parse_launch_env(env);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(DistLaunchEnv, NothingSetIsSingleProcess) {
  LaunchEnv e = parse_launch_env({});
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.local_rank, 0);
  EXPECT_EQ(e.launcher, Launcher::None);
  EXPECT_FALSE(e.is_distributed());
  EXPECT_EQ(e.master_addr, "127.0.0.1");
  EXPECT_EQ(e.master_port, 29500);
}

TEST(DistLaunchEnv, Torchrun) {
  LaunchEnv e = parse_launch_env({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"},
                                  {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "1234"}});
  EXPECT_EQ(e.launcher, Launcher::Torchrun);
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "node7");
  EXPECT_EQ(e.master_port, 1234);
  EXPECT_TRUE(e.is_distributed());
}

TEST(DistLaunchEnv, LocalRankDefaultsToRank) {
  LaunchEnv e = parse_launch_env({{"RANK", "1"}, {"WORLD_SIZE", "2"}});
  EXPECT_EQ(e.local_rank, 1);
}

TEST(DistLaunchEnv, Mpirun) {
  LaunchEnv e = parse_launch_env({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"},
                                  {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
  EXPECT_EQ(e.launcher, Launcher::Mpirun);
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "127.0.0.1");  // documented default
  EXPECT_EQ(e.master_port, 29500);
}

TEST(DistLaunchEnv, Slurm) {
  LaunchEnv e = parse_launch_env({{"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "0"},
                                  {"SLURM_JOB_NODELIST", "gpu[003-004,010],cpu1"}});
  EXPECT_EQ(e.launcher, Launcher::Slurm);
  EXPECT_EQ(e.rank, 2);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_rank, 0);
  EXPECT_EQ(e.master_addr, "gpu003");
  EXPECT_EQ(e.master_port, 29500);
  // MASTER_ADDR wins over the node list.
  EXPECT_EQ(parse_launch_env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}, {"SLURM_NODELIST", "a"},
                              {"MASTER_ADDR", "10.0.0.1"}})
                .master_addr,
            "10.0.0.1");
}

TEST(DistLaunchEnv, TorchrunWinsOverOuterLaunchers) {
  // torchrun started inside an srun allocation: its own variables describe this process.
  LaunchEnv e = parse_launch_env({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}});
  EXPECT_EQ(e.launcher, Launcher::Torchrun);
  EXPECT_EQ(e.rank, 1);
}

TEST(DistLaunchEnv, FirstSlurmHost) {
  EXPECT_EQ(first_slurm_host("node01"), "node01");
  EXPECT_EQ(first_slurm_host("a,b"), "a");
  EXPECT_EQ(first_slurm_host("node[01-04,07],gpu3"), "node01");
  EXPECT_EQ(first_slurm_host("rack[7,9]-n[1-2]"), "rack7-n");
  EXPECT_EQ(first_slurm_host(""), "");
}

TEST(DistLaunchEnv, MalformedValuesNameTheVariable) {
  EXPECT_NE(error_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}}).find("RANK must be an integer, got 'x'"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2x"}}).find("WORLD_SIZE must be an integer"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", ""}}).find("WORLD_SIZE"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "0"}}).find("WORLD_SIZE must be at least 1"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "-1"}, {"WORLD_SIZE", "2"}}).find("RANK must be at least 0"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}}).find("RANK=2 is out of range for WORLD_SIZE=2"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}}).find("RANK is set but WORLD_SIZE is not"), std::string::npos);
  EXPECT_NE(error_of({{"WORLD_SIZE", "2"}}).find("WORLD_SIZE is set but RANK is not"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1.5"}}).find("LOCAL_RANK"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "99999999999"}, {"WORLD_SIZE", "2"}}).find("RANK must be an integer"), std::string::npos);
  EXPECT_NE(error_of({{"OMPI_COMM_WORLD_RANK", "a"}, {"OMPI_COMM_WORLD_SIZE", "2"}}).find("OMPI_COMM_WORLD_RANK"),
            std::string::npos);
  EXPECT_NE(error_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "two"}}).find("SLURM_NTASKS"), std::string::npos);
  EXPECT_NE(error_of({{"MASTER_PORT", "http"}}).find("MASTER_PORT must be an integer"), std::string::npos);
  EXPECT_NE(error_of({{"MASTER_PORT", "70000"}}).find("MASTER_PORT must be a port"), std::string::npos);
  EXPECT_NE(error_of({{"MASTER_PORT", "0"}}).find("MASTER_PORT"), std::string::npos);
  EXPECT_NE(error_of({{"MASTER_ADDR", ""}}).find("MASTER_ADDR"), std::string::npos);
  // Surrounding spaces are tolerated.
  EXPECT_EQ(parse_launch_env({{"RANK", " 1 "}, {"WORLD_SIZE", "2\t"}}).rank, 1);
}

TEST(DistLaunchEnv, ReadsTheProcessEnvironment) {
  // Only variables this test sets; restore them afterwards (ctest may itself run under a launcher).
  const char* names[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"};
  std::map<std::string, std::string> saved;
  for (const char* n : names)
    if (const char* v = std::getenv(n)) saved[n] = v;
  setenv("RANK", "1", 1);
  setenv("WORLD_SIZE", "3", 1);
  setenv("LOCAL_RANK", "0", 1);
  setenv("MASTER_PORT", "4567", 1);
  LaunchEnv e = launch_env_from_environment();
  for (const char* n : names) {
    if (saved.count(n)) setenv(n, saved[n].c_str(), 1);
    else unsetenv(n);
  }
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.world_size, 3);
  EXPECT_EQ(e.local_rank, 0);
  EXPECT_EQ(e.master_port, 4567);
}

}  // namespace
}  // namespace fme::dist

// The distributed runtime: rendezvous of the launched processes over c10d's TCPStore and CPU collectives
// over Gloo (ProcessGroupGloo), for the whole world and along each axis of the mesh ("tp", "dp").
//
// Rendezvous: rank 0 serves a TCPStore at MASTER_ADDR:MASTER_PORT, every rank connects to it and
// counts itself in; if not all arrive within the timeout each rank throws DistError
// "rendezvous: only 1 of 2 processes arrived at 127.0.0.1:29500 within 30 s" instead of hanging.
// Then one ProcessGroupGloo is connected for the world and one per mesh-axis group this rank belongs to
// (each over a PrefixStore of the same TCPStore with its own prefix), with the same timeout for the
// connection and for every later collective.
//
// A single process (world size 1) never creates a store or a socket: every collective is a no-op
// (all_gather returns the shard). Groups along an axis of size 1, or an axis the mesh does not name, are
// also no-ops.
//
// dtypes: Gloo has no bf16 arithmetic, so all_reduce_sum sums bf16 and fp16 in fp32 and rounds back once
// (also more accurate than summing in 16 bits); all_gather and broadcast move bf16 (and int16) as its raw
// 16-bit pattern (bit-exact). Non-contiguous tensors are staged through a contiguous copy.
//
// Like every c10d group, collectives must be called in the same order on all members of a group.
// The network device is the loopback when MASTER_ADDR is a loopback address, the interface named by
// GLOO_SOCKET_IFNAME if set, and otherwise the address this host's name resolves to.
#pragma once
#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dist/launch_env.h"
#include "plans/mesh.h"
#include "util/error.h"

namespace fme::dist {

using plans::Mesh;
using plans::MeshAxis;

namespace detail {
struct DistImpl;  // the c10d store and Gloo groups; defined in process_group.cpp
}

// Rendezvous or a collective failed (peer missing, died, timed out, port in use).
struct DistError : Error {
  using Error::Error;
};

// Default time to wait for peers: long enough for slow starts on a busy cluster.
constexpr std::chrono::milliseconds kDefaultTimeout{std::chrono::minutes(5)};

class Dist {
 public:
  // The axis name that means "all processes".
  static constexpr const char* kWorld = "";

  // Joins the world group only. Throws ConfigError for an inconsistent env, DistError on rendezvous failure.
  static std::shared_ptr<Dist> init(const LaunchEnv& env, std::chrono::milliseconds timeout = kDefaultTimeout);
  // Joins the world group and this rank's group along every mesh axis of size > 1. ConfigError
  // "mesh dp=2,tp=2 has 4 processes but WORLD_SIZE is 2" when the mesh does not fit the world.
  static std::shared_ptr<Dist> init(const LaunchEnv& env, const Mesh& mesh,
                                    std::chrono::milliseconds timeout = kDefaultTimeout);
  ~Dist();
  Dist(const Dist&) = delete;
  Dist& operator=(const Dist&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }
  const Mesh& mesh() const { return mesh_; }
  // This rank's index in its group along `axis` (its coordinate) and that group's size; kWorld → rank/world.
  int rank(const std::string& axis) const;
  int size(const std::string& axis) const;
  // Global ranks of this rank's group along `axis`, in group order.
  std::vector<int> group_ranks(const std::string& axis) const;

  // In place: every member ends with the elementwise sum over the group.
  void all_reduce_sum(at::Tensor& t, const std::string& axis = kWorld);
  // Every member passes its shard (same shape and dtype on all members); every member gets the shards
  // concatenated along `dim` (negative counts from the end) in group order.
  at::Tensor all_gather(const at::Tensor& shard, int64_t dim, const std::string& axis = kWorld);
  // In place: every member ends with the tensor of the member whose index in the group is `root`.
  void broadcast(at::Tensor& t, int root, const std::string& axis = kWorld);
  // Returns once every member of the group has called it.
  void barrier(const std::string& axis = kWorld);

  // The rendezvous store (c10d's TCPStore, served by rank 0): small shared keys and atomic counters, for work
  // that ranks claim rather than being assigned by rank number. Callers namespace their keys. A single
  // process has an in-process store. DistError when the store cannot be reached (rank 0 is gone).
  int64_t store_add(const std::string& key, int64_t delta);  // the value after adding (a missing key is 0)
  void store_set(const std::string& key, const std::string& value);
  std::optional<std::string> store_get(const std::string& key);  // nullopt when absent; never waits
  // Sets `key` to `desired` when it holds `expected` ("" also matches an absent key); whether it did.
  bool store_compare_set(const std::string& key, const std::string& expected, const std::string& desired);

 private:
  Dist(int rank, int world, Mesh mesh);
  int rank_ = 0;
  int world_ = 1;
  Mesh mesh_;
  std::unique_ptr<detail::DistImpl> impl_;  // null for a single process
  std::mutex store_mu_;                       // one store request at a time from this process's threads
  std::map<std::string, std::string> local_store_;  // a single process's store
};

}  // namespace fme::dist

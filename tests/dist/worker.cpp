// dist_worker: one process of a multi-process test of src/dist. The test binary execs N of these with
// RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT set (exec, not fork-and-continue, so no libtorch thread pool
// is ever inherited across fork). Usage: dist_worker SCENARIO TIMEOUT_MS [MESH]
// Exit status: 0 all checks passed, 1 a check failed, 2 an fme error (message on stderr).
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "dist/launch_env.h"
#include "dist/process_group.h"

namespace {

int g_failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "CHECK FAILED: %s\n", what.c_str());
    ++g_failures;
  }
}

void check_equal(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  bool ok = got.sizes() == want.sizes() && got.scalar_type() == want.scalar_type() &&
            at::equal(got.to(at::kDouble), want.to(at::kDouble));
  if (!ok) {
    std::ostringstream s;
    s << what << ": got " << got << " want " << want;
    check(false, s.str());
  }
}

// Sum over `ranks` of (r + 1).
double sum_plus_one(const std::vector<int>& ranks) {
  double s = 0;
  for (int r : ranks) s += r + 1;
  return s;
}

void all_reduce(fme::dist::Dist& d, at::ScalarType dtype, const std::string& axis) {
  auto ranks = d.group_ranks(axis);
  at::Tensor t = at::full({3, 5}, d.rank() + 1, at::TensorOptions().dtype(dtype));
  d.all_reduce_sum(t, axis);
  check_equal(t, at::full({3, 5}, sum_plus_one(ranks), at::TensorOptions().dtype(dtype)),
              "all_reduce_sum " + std::string(c10::toString(dtype)) + " axis '" + axis + "'");
  // A non-contiguous view is reduced in place too.
  at::Tensor base = at::full({4, 6}, d.rank() + 1, at::TensorOptions().dtype(dtype));
  at::Tensor view = base.t();
  d.all_reduce_sum(view, axis);
  check_equal(base, at::full({4, 6}, sum_plus_one(ranks), at::TensorOptions().dtype(dtype)),
              "all_reduce_sum of a transposed view, axis '" + axis + "'");
}

// bf16 values that need fp32 accumulation: 1 + rank/128 each, exactly representable.
void all_reduce_bf16_precise(fme::dist::Dist& d) {
  at::Tensor t = at::full({7}, 1.0 + d.rank() / 128.0, at::TensorOptions().dtype(at::kBFloat16));
  d.all_reduce_sum(t);
  double want = 0;
  for (int r = 0; r < d.world(); ++r) want += 1.0 + r / 128.0;
  check_equal(t, at::full({7}, want, at::TensorOptions().dtype(at::kFloat)).to(at::kBFloat16), "bf16 sum");
}

// Shard of rank r (index i in the group): a 2x3 block of 100*r + 0..5.
at::Tensor shard_of(int r, at::ScalarType dtype) {
  return (at::arange(6, at::TensorOptions().dtype(at::kFloat)).view({2, 3}) + 100 * r).to(dtype);
}

void all_gather(fme::dist::Dist& d, at::ScalarType dtype, const std::string& axis) {
  auto ranks = d.group_ranks(axis);
  std::vector<at::Tensor> parts;
  for (int r : ranks) parts.push_back(shard_of(r, dtype));
  at::Tensor mine = shard_of(d.rank(), dtype);
  check_equal(d.all_gather(mine, 0, axis), at::cat(parts, 0), "all_gather dim 0 axis '" + axis + "'");
  check_equal(d.all_gather(mine, 1, axis), at::cat(parts, 1), "all_gather dim 1 axis '" + axis + "'");
  check_equal(d.all_gather(mine, -1, axis), at::cat(parts, 1), "all_gather dim -1 axis '" + axis + "'");
}

void broadcast(fme::dist::Dist& d, const std::string& axis) {
  auto ranks = d.group_ranks(axis);
  int root = static_cast<int>(ranks.size()) - 1;  // not 0, to show root is honoured
  at::Tensor t = at::full({2, 2}, d.rank() + 0.5, at::TensorOptions().dtype(at::kBFloat16));
  d.broadcast(t, root, axis);
  check_equal(t, at::full({2, 2}, ranks[root] + 0.5, at::TensorOptions().dtype(at::kBFloat16)),
              "broadcast axis '" + axis + "'");
  at::Tensor i = at::full({3}, d.rank(), at::TensorOptions().dtype(at::kLong));
  d.broadcast(i, root, axis);
  check_equal(i, at::full({3}, ranks[root], at::TensorOptions().dtype(at::kLong)), "broadcast int64 axis '" + axis + "'");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: dist_worker SCENARIO TIMEOUT_MS [MESH]\n");
    return 64;
  }
  std::string scenario = argv[1];
  std::chrono::milliseconds timeout{std::atol(argv[2])};
  std::string mesh_spec = argc > 3 ? argv[3] : "";
  try {
    auto env = fme::dist::launch_env_from_environment();
    // No MESH argument: the world group only.
    auto d = mesh_spec.empty() ? fme::dist::Dist::init(env, timeout)
                               : fme::dist::Dist::init(env, fme::plans::Mesh::parse(mesh_spec, env.world_size), timeout);
    check(d->rank() == env.rank && d->world() == env.world_size, "rank/world");
    if (scenario == "join") {
      // Rendezvous only.
    } else if (scenario == "peer_dies") {
      // Rank 1 leaves right after the rendezvous; rank 0's collective must fail, not hang.
      if (d->rank() == 1) return 0;
      at::Tensor t = at::ones({4});
      d->all_reduce_sum(t);
      check(false, "all_reduce_sum with a dead peer returned");
    } else if (scenario == "world") {
      all_reduce(*d, at::kFloat, "");
      all_reduce(*d, at::kBFloat16, "");
      all_reduce(*d, at::kHalf, "");
      all_reduce(*d, at::kLong, "");
      all_reduce_bf16_precise(*d);
      all_gather(*d, at::kFloat, "");
      all_gather(*d, at::kBFloat16, "");
      broadcast(*d, "");
      d->barrier();
    } else if (scenario == "mesh") {
      // dp=2,tp=2: tp groups {0,1},{2,3}; dp groups {0,2},{1,3}.
      auto tp = d->group_ranks("tp");
      auto dp = d->group_ranks("dp");
      int r = d->rank();
      check(tp == std::vector<int>{r / 2 * 2, r / 2 * 2 + 1}, "tp group ranks");
      check(dp == std::vector<int>{r % 2, r % 2 + 2}, "dp group ranks");
      check(d->rank("tp") == r % 2 && d->rank("dp") == r / 2 && d->size("tp") == 2, "axis rank/size");
      for (const char* axis : {"tp", "dp", ""}) {
        all_reduce(*d, at::kFloat, axis);
        all_reduce(*d, at::kBFloat16, axis);
        all_gather(*d, at::kFloat, axis);
        broadcast(*d, axis);
        d->barrier(axis);
      }
      // An axis the mesh does not name has size 1: a no-op.
      at::Tensor t = at::full({2}, r, at::TensorOptions().dtype(at::kFloat));
      d->all_reduce_sum(t, "pp");
      check_equal(t, at::full({2}, r, at::TensorOptions().dtype(at::kFloat)), "all_reduce over absent axis");
      d->barrier();
    } else {
      std::fprintf(stderr, "unknown scenario %s\n", scenario.c_str());
      return 64;
    }
  } catch (const fme::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  if (g_failures == 0) std::printf("ok\n");
  return g_failures == 0 ? 0 : 1;
}

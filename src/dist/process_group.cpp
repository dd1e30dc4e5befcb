// Dist: c10d TCPStore rendezvous + ProcessGroupGloo collectives for the world and per mesh axis.
// All c10d/Gloo types stay in this file (behind detail::DistImpl) so that users of process_group.h need
// neither the Gloo headers nor USE_C10D_GLOO.
#include "dist/process_group.h"

#include <c10/core/InferenceMode.h>

#include <ATen/ops/cat.h>
#include <ATen/ops/empty_like.h>
#include <c10/util/Exception.h>
#include <c10/util/Logging.h>
#ifdef C10_USE_GLOG
#include <glog/logging.h>
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>
#include <utility>

#ifndef USE_C10D_GLOO
#error "process_group.cpp must be compiled with USE_C10D_GLOO (see src/dist/CMakeLists.txt)"
#endif

namespace fme::dist {

namespace {

std::string seconds(std::chrono::milliseconds t) {
  char buf[32];
  if (t.count() % 1000 == 0)
    std::snprintf(buf, sizeof buf, "%lld s", static_cast<long long>(t.count() / 1000));
  else
    std::snprintf(buf, sizeof buf, "%.1f s", t.count() / 1000.0);
  return buf;
}

// c10::Error::what() carries a C++ backtrace in 1.13; users need only the message.
// Gloo's own text also names its source line ("[./gloo/transport/tcp/pair.cc:589] Read error ..."): dropped,
// the cause stays.
std::string message_of(const std::exception& e) {
  const auto* c = dynamic_cast<const c10::Error*>(&e);
  std::string m = c ? c->what_without_backtrace() : e.what();
  for (size_t open = m.find('['); open != std::string::npos; open = m.find('[', open)) {
    const size_t close = m.find("] ", open);
    const size_t colon = close == std::string::npos ? close : m.rfind(':', close);
    bool source = colon != std::string::npos && colon > open && close > colon + 1 &&
                  m.find_first_not_of("0123456789", colon + 1) == close;
    if (source) {
      const std::string file = m.substr(open + 1, colon - open - 1);
      auto ends = [&](const std::string& x) { return file.size() > x.size() && file.compare(file.size() - x.size(), x.size(), x) == 0; };
      source = file.find_first_of("[] ") == std::string::npos && (ends(".cc") || ends(".cpp") || ends(".h"));
    }
    if (source) m.erase(open, close + 2 - open);
    else ++open;
  }
  return m;
}

// c10d logs its own view of each failure (socket timeouts, Gloo read errors) to stderr, through glog in
// Debian's libtorch ("WARNING: Logging before InitGoogleLogging()..." then the line) or c10's own logger in
// upstream builds. fme reports every such failure itself, in one line naming the rank and the cause, so the
// library's lines are only noise: below FATAL they are dropped.
void quiet_library_logs() {
#ifdef C10_USE_GLOG
  FLAGS_minloglevel = google::GLOG_FATAL;
#else
  ::FLAGS_caffe2_log_level = c10::GLOG_FATAL;  // c10/util/Logging.h declares it globally, with or without gflags
#endif
}

bool is_loopback(const std::string& addr) {
  return addr.rfind("127.", 0) == 0 || addr == "localhost" || addr == "::1";
}

// Gather and broadcast only copy bytes, but Gloo dispatches on dtype and knows just float, double,
// half, int8, uint8, int32 and int64: move the others as a same-width type it knows (a bit-exact view;
// fp16 is never computed with here, so bf16 bit patterns pass through unchanged).
at::ScalarType bits_type(at::ScalarType t) {
  switch (t) {
    case at::kBFloat16: return at::kHalf;
    case at::kShort: return at::kHalf;
    case at::kBool: return at::kByte;
    default: return t;
  }
}

}  // namespace

namespace detail {

// One Gloo group: the process group plus its members (global ranks), for error messages.
struct Group {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::vector<int> ranks;
  std::string name;  // "world" or the axis name
};

struct DistImpl {
  // Declaration order is destruction order reversed: groups go before the store they rendezvoused on.
  c10::intrusive_ptr<c10d::Store> store;
  Group world;
  std::map<std::string, Group> axes;  // only axes of size > 1 that are not the whole world
};
}  // namespace detail

Dist::Dist(int rank, int world, Mesh mesh) : rank_(rank), world_(world), mesh_(std::move(mesh)) {}
Dist::~Dist() = default;

std::shared_ptr<Dist> Dist::init(const LaunchEnv& env, std::chrono::milliseconds timeout) {
  return init(env, Mesh(), timeout);
}

std::shared_ptr<Dist> Dist::init(const LaunchEnv& env, const Mesh& mesh_in, std::chrono::milliseconds timeout) {
  if (env.world_size < 1 || env.rank < 0 || env.rank >= env.world_size)
    throw ConfigError("rank " + std::to_string(env.rank) + " is out of range for world size " +
                      std::to_string(env.world_size));
  // No mesh (no axes) means only the world group exists.
  bool has_mesh = !mesh_in.axes.empty();
  if (has_mesh && mesh_in.num_ranks() != env.world_size)
    throw ConfigError("mesh " + mesh_in.to_string() + " has " + std::to_string(mesh_in.num_ranks()) +
                      " processes but WORLD_SIZE is " + std::to_string(env.world_size));
  std::shared_ptr<Dist> d(new Dist(env.rank, env.world_size, mesh_in));
  if (env.world_size == 1) return d;  // single process: no store, no sockets
  quiet_library_logs();

  const auto start = std::chrono::steady_clock::now();
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  auto impl = std::make_unique<detail::DistImpl>();

  // 1. The store. Rank 0 serves it; the others retry connecting until the timeout.
  try {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(env.master_port);
    opts.isServer = env.rank == 0;
    opts.numWorkers = env.world_size;
    opts.waitWorkers = false;  // we count arrivals ourselves to report how many came
    opts.timeout = timeout;
    impl->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
  } catch (const std::exception& e) {
    if (env.rank == 0)
      throw DistError("rendezvous: rank 0 could not serve the store at " + where +
                      " (is the port in use? set MASTER_PORT): " + message_of(e));
    throw DistError("rendezvous: rank " + std::to_string(env.rank) + " could not reach rank 0 at " + where +
                    " within " + seconds(timeout) + " (is rank 0 running with the same MASTER_ADDR/MASTER_PORT?): " +
                    message_of(e));
  }

  // 2. Count everyone in, so that a missing peer is reported as such rather than as a Gloo timeout.
  // Rank 0 serves the store, so it must not vanish while the others are still asking: on timeout it
  // publishes the count under `failed`, waits (briefly) until every arrived rank has read it and left,
  // and only then throws; so every arrived rank reports the same "only k of N" message.
  try {
    const std::string arrived_key = "fme/rendezvous/arrived";
    const std::string failed_key = "fme/rendezvous/failed";
    const std::string left_key = "fme/rendezvous/left";
    auto fail = [&](int64_t arrived) -> DistError {
      return DistError("rendezvous: only " + std::to_string(arrived) + " of " + std::to_string(env.world_size) +
                       " processes arrived at " + where + " within " + seconds(timeout));
    };
    int64_t arrived = impl->store->add(arrived_key, 1);
    while (arrived < env.world_size) {
      if (env.rank != 0 && impl->store->check({failed_key})) {
        auto v = impl->store->get(failed_key);
        impl->store->add(left_key, 1);
        throw fail(std::stoll(std::string(v.begin(), v.end())));
      }
      if (std::chrono::steady_clock::now() - start >= timeout) {
        if (env.rank == 0) {
          std::string n = std::to_string(arrived);
          impl->store->set(failed_key, std::vector<uint8_t>(n.begin(), n.end()));
          auto linger = std::chrono::steady_clock::now() + std::chrono::seconds(2);
          while (impl->store->add(left_key, 0) < arrived - 1 && std::chrono::steady_clock::now() < linger)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        } else {
          impl->store->add(left_key, 1);
        }
        throw fail(arrived);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      arrived = impl->store->add(arrived_key, 0);
    }
  } catch (const DistError&) {
    throw;
  } catch (const std::exception& e) {
    throw DistError("rendezvous at " + where + ": lost the connection to rank 0's store before all " +
                    std::to_string(env.world_size) + " processes arrived (rank 0 exited or died): " + message_of(e));
  }

  // 3. Gloo groups over the same store, each under its own prefix.
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  try {
    std::shared_ptr<::gloo::transport::Device> device;
    if (is_loopback(env.master_addr))
      device = c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
    else if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
      device = c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
    else
      device = c10d::ProcessGroupGloo::createDefaultDevice();
    options->devices.push_back(device);
    // Two threads per group: the work is small messages from one caller thread; the default is also 2.
    options->threads = 2;
  } catch (const std::exception& e) {
    throw DistError("rendezvous: cannot create the Gloo network device: " + message_of(e));
  }

  auto connect = [&](const std::string& name, const std::string& prefix, int group_rank,
                     std::vector<int> ranks) -> detail::Group {
    detail::Group g;
    g.name = name;
    g.ranks = std::move(ranks);
    try {
      auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, impl->store);
      g.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, group_rank, static_cast<int>(g.ranks.size()), options);
    } catch (const std::exception& e) {
      std::string members;
      for (int r : g.ranks) members += (members.empty() ? "" : ",") + std::to_string(r);
      throw DistError("rendezvous: connecting group " + name + " (ranks " + members + ") failed within " +
                      seconds(timeout) + ": " + message_of(e));
    }
    return g;
  };

  std::vector<int> all(env.world_size);
  for (int r = 0; r < env.world_size; ++r) all[r] = r;
  impl->world = connect("world", "fme/world/", env.rank, all);
  for (const MeshAxis& a : d->mesh_.axes) {
    if (a.size == 1 || a.size == env.world_size) continue;  // no-op / same as the world group
    int gi = d->mesh_.group_index(env.rank, a.name);
    impl->axes.emplace(a.name, connect(a.name, "fme/axis/" + a.name + "/" + std::to_string(gi) + "/",
                                       d->mesh_.coord(env.rank, a.name), d->mesh_.group_ranks(env.rank, a.name)));
  }
  d->impl_ = std::move(impl);

  // 4. Nobody leaves init (rank 0 least, it serves the store) before every group is connected.
  d->barrier();
  return d;
}

int Dist::rank(const std::string& axis) const {
  return axis.empty() ? rank_ : (mesh_.has(axis) ? mesh_.coord(rank_, axis) : 0);
}

int Dist::size(const std::string& axis) const { return axis.empty() ? world_ : mesh_.size(axis); }

std::vector<int> Dist::group_ranks(const std::string& axis) const {
  if (axis.empty()) {
    std::vector<int> all(world_);
    for (int r = 0; r < world_; ++r) all[r] = r;
    return all;
  }
  if (!mesh_.has(axis)) return {rank_};
  return mesh_.group_ranks(rank_, axis);
}

namespace {

// The group for `axis`, or null when the collective is a no-op (single member).
const detail::Group* find_group(const detail::DistImpl* impl, const Mesh& mesh, int world, const std::string& axis) {
  if (!impl) return nullptr;
  if (axis.empty() || mesh.size(axis) == world) return world > 1 ? &impl->world : nullptr;
  auto it = impl->axes.find(axis);
  return it == impl->axes.end() ? nullptr : &it->second;
}

// Runs one collective and waits for it, turning c10d/Gloo errors into DistError naming the operation.
template <typename F>
void run(const detail::Group& g, const char* op, F&& f) {
  try {
    auto work = f(*g.pg);
    work->wait();
  } catch (const std::exception& e) {
    std::string members;
    for (int r : g.ranks) members += (members.empty() ? "" : ",") + std::to_string(r);
    throw DistError(std::string(op) + " over group " + g.name + " (ranks " + members + ") failed: " + message_of(e));
  }
}

}  // namespace

void Dist::all_reduce_sum(at::Tensor& t, const std::string& axis) {
  const detail::Group* g = find_group(impl_.get(), mesh_, world_, axis);
  if (!g) return;
  // 16-bit floats are summed in fp32 (Gloo lacks bf16), everything else as is.
  bool widen = t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf;
  at::Tensor buf = widen ? t.to(at::kFloat).contiguous() : t.contiguous();
  std::vector<at::Tensor> tensors{buf};
  run(*g, "all_reduce_sum", [&](c10d::ProcessGroupGloo& pg) {
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    return pg.allreduce(tensors, o);
  });
  if (!buf.is_same(t)) t.copy_(buf);
}

at::Tensor Dist::all_gather(const at::Tensor& shard, int64_t dim, const std::string& axis) {
  int64_t nd = shard.dim();
  int64_t d = dim < 0 ? dim + nd : dim;
  if (d < 0 || d >= nd)
    throw ShapeError("all_gather: dim " + std::to_string(dim) + " is out of range for a tensor of " +
                     std::to_string(nd) + " dims");
  const detail::Group* g = find_group(impl_.get(), mesh_, world_, axis);
  if (!g) return shard;
  at::Tensor in = shard.contiguous();
  at::ScalarType bits = bits_type(in.scalar_type());
  if (bits != in.scalar_type()) in = in.view(bits);
  std::vector<at::Tensor> inputs{in};
  std::vector<std::vector<at::Tensor>> outputs(1);
  {
    // Gloo copies into the outputs on its own thread, outside any InferenceMode of the caller's: they must be
    // normal tensors, not inference tensors (a forward under InferenceMode gathers split activations).
    c10::InferenceMode normal(false);
    for (size_t i = 0; i < g->ranks.size(); ++i) outputs[0].push_back(at::empty(in.sizes(), in.options()));
  }
  run(*g, "all_gather", [&](c10d::ProcessGroupGloo& pg) { return pg.allgather(outputs, inputs); });
  at::Tensor full = at::cat(outputs[0], d);
  return bits != shard.scalar_type() ? full.view(shard.scalar_type()) : full;
}

void Dist::broadcast(at::Tensor& t, int root, const std::string& axis) {
  int n = size(axis);
  if (root < 0 || root >= n)
    throw ConfigError("broadcast: root " + std::to_string(root) + " is outside group " +
                      (axis.empty() ? std::string("world") : axis) + " of size " + std::to_string(n));
  const detail::Group* g = find_group(impl_.get(), mesh_, world_, axis);
  if (!g) return;
  at::Tensor buf = t.contiguous();
  at::ScalarType bits = bits_type(buf.scalar_type());
  std::vector<at::Tensor> tensors{bits != buf.scalar_type() ? buf.view(bits) : buf};
  run(*g, "broadcast", [&](c10d::ProcessGroupGloo& pg) {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    return pg.broadcast(tensors, o);
  });
  if (!buf.is_same(t)) t.copy_(buf);
}

void Dist::barrier(const std::string& axis) {
  const detail::Group* g = find_group(impl_.get(), mesh_, world_, axis);
  if (!g) return;
  run(*g, "barrier", [&](c10d::ProcessGroupGloo& pg) { return pg.barrier(); });
}

namespace {
std::vector<uint8_t> bytes_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }
std::string string_of(const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); }
}  // namespace

int64_t Dist::store_add(const std::string& key, int64_t delta) {
  std::lock_guard<std::mutex> lock(store_mu_);
  if (!impl_) {
    std::string& v = local_store_[key];
    const int64_t now = (v.empty() ? 0 : std::stoll(v)) + delta;
    v = std::to_string(now);
    return now;
  }
  try {
    return impl_->store->add(key, delta);
  } catch (const std::exception& e) {
    throw DistError("store add '" + key + "' failed (is rank 0 gone?): " + message_of(e));
  }
}

void Dist::store_set(const std::string& key, const std::string& value) {
  std::lock_guard<std::mutex> lock(store_mu_);
  if (!impl_) {
    local_store_[key] = value;
    return;
  }
  try {
    impl_->store->set(key, bytes_of(value));
  } catch (const std::exception& e) {
    throw DistError("store set '" + key + "' failed (is rank 0 gone?): " + message_of(e));
  }
}

std::optional<std::string> Dist::store_get(const std::string& key) {
  std::lock_guard<std::mutex> lock(store_mu_);
  if (!impl_) {
    auto it = local_store_.find(key);
    return it == local_store_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  try {
    if (!impl_->store->check({key})) return std::nullopt;
    return string_of(impl_->store->get(key));
  } catch (const std::exception& e) {
    throw DistError("store get '" + key + "' failed (is rank 0 gone?): " + message_of(e));
  }
}

bool Dist::store_compare_set(const std::string& key, const std::string& expected, const std::string& desired) {
  std::lock_guard<std::mutex> lock(store_mu_);
  if (!impl_) {
    auto it = local_store_.find(key);
    const std::string now = it == local_store_.end() ? "" : it->second;
    if (now != expected) return false;
    local_store_[key] = desired;
    return true;
  }
  try {
    // c10d's compareSet: sets when the key holds `expected` (or is absent and `expected` is empty) and
    // returns the value the key then holds.
    return string_of(impl_->store->compareSet(key, bytes_of(expected), bytes_of(desired))) == desired;
  } catch (const std::exception& e) {
    throw DistError("store compare-set '" + key + "' failed (is rank 0 gone?): " + message_of(e));
  }
}

}  // namespace fme::dist

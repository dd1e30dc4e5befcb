// fme._native.permute: the shuffled stream's keyed permutation of range(n) at a run of places (python/fme/
// permutation.py defines it and computes the same values with numpy when there is no native build).
//
// Why native: numpy makes ~10 passes over the places per round and again for each cycle walk, ~1 ms for a batch
// of 4096; here a batch's places cost 7-20 us (EPYC Zen 5), so each batch computes its own and the stream needs
// no permutation table.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "native.h"

namespace fme::native {
namespace {

constexpr size_t kRounds = 4;  // permutation.py's ROUNDS

// splitmix64's finaliser, as permutation.py's _mix.
inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// permutation.py's network on values of k bits: round r splits off low[r % 2] low bits L from the high bits H
// and makes the value L followed by H ^ F(L), F(L) = mix(L + key_r) masked to H's width.
struct Feistel {
  uint64_t keys[kRounds];
  unsigned k;       // bits of a value
  unsigned low[2];  // k / 2, k - k / 2

  uint64_t forward(uint64_t x) const {
    for (size_t r = 0; r < kRounds; ++r) {
      const unsigned b = low[r % 2], a = k - b;
      const uint64_t lo = x & ((uint64_t{1} << b) - 1), ma = (uint64_t{1} << a) - 1;
      x = (lo << a) | ((x >> b) ^ (mix(lo + keys[r]) & ma));
    }
    return x;
  }

  uint64_t inverse(uint64_t x) const {
    for (size_t r = kRounds; r-- > 0;) {
      const unsigned b = low[r % 2], a = k - b;
      const uint64_t lo = x >> a, ma = (uint64_t{1} << a) - 1;
      x = (((x & ma) ^ (mix(lo + keys[r]) & ma)) << b) | lo;
    }
    return x;
  }
};

// One step of the network for each of the count values. Built for AVX-512 too, chosen at run time where the
// CPU has it: eight values at once with 64-bit vector multiplies, ~1 ns a step here against ~5 ns scalar.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)  // (clones as GCC names them)
__attribute__((target_clones("arch=x86-64-v4", "default")))
#endif
void step(const Feistel& f, uint64_t* v, size_t count, bool inverse) {
  if (inverse) {
    for (size_t i = 0; i < count; ++i) v[i] = f.inverse(v[i]);
  } else {
    for (size_t i = 0; i < count; ++i) v[i] = f.forward(v[i]);
  }
}

py::array_t<int64_t> permute(int64_t n, const std::vector<uint64_t>& keys, int64_t start, int64_t stop,
                             bool inverse) {
  if (!(0 <= start && start <= stop && stop <= n))
    throw py::value_error("permute: places " + std::to_string(start) + ".." + std::to_string(stop) +
                          " are not within range(" + std::to_string(n) + ")");
  if (keys.size() != kRounds)
    throw py::value_error("permute: expected " + std::to_string(kRounds) + " round keys, got " +
                          std::to_string(keys.size()));
  Feistel f{};
  for (size_t r = 0; r < kRounds; ++r) f.keys[r] = keys[r];
  f.k = 2;  // permutation.py's value_bits: the bits of n - 1, at least 2
  while (f.k < 63 && (uint64_t{1} << f.k) < static_cast<uint64_t>(n)) ++f.k;
  f.low[0] = f.k / 2;
  f.low[1] = f.k - f.k / 2;
  const auto limit = static_cast<uint64_t>(n);
  const size_t count = static_cast<size_t>(stop - start);
  py::array_t<int64_t> out(static_cast<py::ssize_t>(count));
  auto* o = reinterpret_cast<uint64_t*>(out.mutable_data());
  for (size_t i = 0; i < count; ++i) o[i] = static_cast<uint64_t>(start) + i;
  step(f, o, count, inverse);
  // A value at or past n walks on along its cycle, which returns below n. Those are stepped together, packed
  // (about half the places at most): walking each to its end in turn would wait on every multiply and
  // mispredict every exit.
  std::vector<uint64_t> walking;
  std::vector<size_t> where;
  for (size_t i = 0; i < count; ++i)
    if (o[i] >= limit) {
      walking.push_back(o[i]);
      where.push_back(i);
    }
  while (!walking.empty()) {
    step(f, walking.data(), walking.size(), inverse);
    size_t kept = 0;
    for (size_t j = 0; j < walking.size(); ++j) {
      if (walking[j] < limit) {
        o[where[j]] = walking[j];
      } else {
        walking[kept] = walking[j];
        where[kept++] = where[j];
      }
    }
    walking.resize(kept);
    where.resize(kept);
  }
  return out;
}

}  // namespace

void bind_permute(py::module_& m) {
  m.def("permute", &permute, py::arg("n"), py::arg("keys"), py::arg("start"), py::arg("stop"),
        py::arg("inverse") = false,
        "The stream's keyed permutation of range(n) at places start..stop-1 (or, with inverse, the places of "
        "those values), as fme.permutation.permute computes it.");
}

}  // namespace fme::native

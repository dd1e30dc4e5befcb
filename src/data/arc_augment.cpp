// Geometric and colour augmentation of ARC tasks, and the deterministic choice of variants (see arc_augment.h).
#include "data/arc_augment.h"

#include <algorithm>
#include <numeric>

#include "util/error.h"

namespace fme::arc {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

template <typename T>
void fisher_yates(std::vector<T>& v, size_t first, SplitMix64& rng) {
  // Shuffles v[first..]; from the last index down so the draw count is fixed by the length.
  for (size_t i = v.size(); i-- > first + 1;) {
    size_t j = first + static_cast<size_t>(rng.uniform(i - first + 1));
    std::swap(v[i], v[j]);
  }
}

bool is_permutation_of_range(const std::vector<uint32_t>& order, size_t n) {
  if (order.size() != n) return false;
  std::vector<bool> seen(n, false);
  for (uint32_t x : order) {
    if (x >= n || seen[x]) return false;
    seen[x] = true;
  }
  return true;
}

SplitMix64 stream(uint64_t task_key, uint64_t s) { return SplitMix64(mix64(task_key + (s + 1) * kGolden)); }

}  // namespace

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::next() {
  state_ += kGolden;
  return mix64(state_);
}

uint64_t SplitMix64::uniform(uint64_t n) {
  if (n <= 1) return 0;
  // Reject the lowest (2^64 mod n) values so every residue is equally likely.
  const uint64_t threshold = (0 - n) % n;
  for (;;) {
    uint64_t r = next();
    if (r >= threshold) return r % n;
  }
}

uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ULL;
  }
  return h;
}

bool Augmentation::is_identity() const {
  if (hflip || rot90 % 4 != 0) return false;
  for (int c = 0; c < 10; ++c)
    if (colours[c] != c) return false;
  for (size_t i = 0; i < train_order.size(); ++i)
    if (train_order[i] != i) return false;
  return true;
}

Json augmentation_to_json(const Augmentation& a) {
  std::string colours;
  for (uint8_t c : a.colours) colours.push_back(static_cast<char>('0' + c));
  return Json{{"hflip", a.hflip}, {"rot90", a.rot90}, {"colours", colours}, {"train_order", a.train_order}};
}

Augmentation augmentation_from_json(const Json& j, const std::string& what) {
  Augmentation a;
  a.hflip = require<bool>(j, "hflip", what);
  a.rot90 = require<int>(j, "rot90", what);
  if (a.rot90 < 0 || a.rot90 > 3) throw ConfigError(what + ": rot90 must be 0..3, got " + std::to_string(a.rot90));
  const std::string colours = require<std::string>(j, "colours", what);
  std::vector<bool> seen(10, false);
  bool ok = colours.size() == 10;
  for (size_t i = 0; ok && i < 10; ++i) {
    int c = colours[i] - '0';
    ok = c >= 0 && c <= 9 && !seen[c];
    if (ok) {
      seen[c] = true;
      a.colours[i] = static_cast<uint8_t>(c);
    }
  }
  if (!ok) throw ConfigError(what + ": colours must be a permutation of the 10 digits 0..9, got \"" + colours + "\"");
  auto it = j.find("train_order");
  if (it != j.end() && !it->is_null()) {
    if (!it->is_array()) throw ConfigError(what + ": train_order must be an array, got " + describe_json(*it));
    for (const Json& x : *it) {
      if (!x.is_number_unsigned() || x.get<uint64_t>() > UINT32_MAX)
        throw ConfigError(what + ": train_order must hold non-negative integers, got " + describe_json(x));
      a.train_order.push_back(x.get<uint32_t>());
    }
    if (!is_permutation_of_range(a.train_order, a.train_order.size()))
      throw ConfigError(what + ": train_order must be a permutation of 0.." + std::to_string(a.train_order.size() - 1));
  }
  return a;
}

Grid hflip(const Grid& g) {
  Grid out = g;
  for (auto& row : out) std::reverse(row.begin(), row.end());
  return out;
}

Grid rot90(const Grid& g, int k) {
  k = ((k % 4) + 4) % 4;
  if (k == 0 || g.empty()) return g;
  const size_t h = height(g), w = width(g);
  if (k == 2) {
    // [H][W] -> [H][W]: out[i][j] = g[H-1-i][W-1-j]
    Grid out(h, std::vector<uint8_t>(w));
    for (size_t i = 0; i < h; ++i)
      for (size_t j = 0; j < w; ++j) out[i][j] = g[h - 1 - i][w - 1 - j];
    return out;
  }
  // [H][W] -> [W][H]. One counter-clockwise turn: out[i][j] = g[j][W-1-i] (the last column becomes the
  // first row); three turns (one clockwise): out[i][j] = g[H-1-j][i].
  Grid out(w, std::vector<uint8_t>(h));
  for (size_t i = 0; i < w; ++i)
    for (size_t j = 0; j < h; ++j) out[i][j] = k == 1 ? g[j][w - 1 - i] : g[h - 1 - j][i];
  return out;
}

Grid apply_geometry(const Grid& g, bool flip, int k) { return rot90(flip ? hflip(g) : g, k); }

Grid recolour(const Grid& g, const std::array<uint8_t, 10>& colours) {
  Grid out = g;
  for (auto& row : out)
    for (auto& c : row) c = colours[c];
  return out;
}

Grid augment_grid(const Grid& g, const Augmentation& a) {
  return recolour(apply_geometry(g, a.hflip, a.rot90), a.colours);
}

Grid revert_grid(const Grid& g, const Augmentation& a) {
  std::array<uint8_t, 10> inverse{};
  for (int c = 0; c < 10; ++c) inverse[a.colours[c]] = static_cast<uint8_t>(c);
  Grid out = rot90(recolour(g, inverse), -a.rot90);
  return a.hflip ? hflip(out) : out;
}

Task augment_task(const Task& task, const Augmentation& a) {
  if (!a.train_order.empty() && !is_permutation_of_range(a.train_order, task.train.size()))
    throw ConfigError("task " + task.id + ": train_order is not a permutation of its " +
                      std::to_string(task.train.size()) + " train examples");
  Task out;
  out.id = task.id;
  out.train.reserve(task.train.size());
  for (size_t i = 0; i < task.train.size(); ++i) {
    const Example& ex = task.train[a.train_order.empty() ? i : a.train_order[i]];
    out.train.push_back({augment_grid(ex.input, a), augment_grid(ex.output, a)});
  }
  for (const TestCase& tc : task.test) {
    TestCase t;
    t.input = augment_grid(tc.input, a);
    if (tc.output) t.output = augment_grid(*tc.output, a);
    out.test.push_back(std::move(t));
  }
  return out;
}

std::vector<Augmentation> choose_augmentations(const std::string& task_id, size_t n_train, int n, uint64_t seed) {
  if (n < 1 || n > 8)
    throw ConfigError("--augment must be 1..8 (the number of geometric variants), got " + std::to_string(n));
  const uint64_t task_key = mix64(seed ^ fnv1a64(task_id));

  std::vector<int> geometries{1, 2, 3, 4, 5, 6, 7};
  SplitMix64 geo_rng = stream(task_key, 0);
  fisher_yates(geometries, 0, geo_rng);

  std::vector<Augmentation> out;
  out.reserve(static_cast<size_t>(n));
  Augmentation identity;
  identity.train_order.resize(n_train);
  std::iota(identity.train_order.begin(), identity.train_order.end(), 0u);
  out.push_back(identity);
  for (int v = 1; v < n; ++v) {
    Augmentation a;
    const int g = geometries[static_cast<size_t>(v - 1)];
    a.hflip = g >= 4;
    a.rot90 = g % 4;
    SplitMix64 rng = stream(task_key, static_cast<uint64_t>(v));
    std::vector<uint8_t> colours{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    const bool keep_background = rng.uniform(10) < 9;
    fisher_yates(colours, keep_background ? 1 : 0, rng);
    std::copy(colours.begin(), colours.end(), a.colours.begin());
    a.train_order = identity.train_order;
    fisher_yates(a.train_order, 0, rng);
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace fme::arc

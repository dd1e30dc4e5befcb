// Augmentation of ARC tasks: the 8 geometric variants (horizontal flip x counter-clockwise quarter turns),
// colour permutations and train-example shuffles, drawn deterministically from (seed, task id, variant)
// with a PRNG written out here, so the same command gives the same prompts on every platform and
// standard library.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/arc_task.h"
#include "util/json.h"

namespace fme::arc {

// SplitMix64 (Steele, Lea, Flood 2014): state += 0x9E3779B97F4A7C15, output = mix64(state).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  // Uniform integer in [0, n), n >= 1, by rejection (no modulo bias; independent of <random>).
  uint64_t uniform(uint64_t n);

 private:
  uint64_t state_;
};
// The SplitMix64 output function (a bijective 64-bit mixer).
uint64_t mix64(uint64_t x);
// FNV-1a 64-bit hash of the bytes of `s` (turns a task id into a number).
uint64_t fnv1a64(std::string_view s);

// One augmented view of a task. Applied to every grid: first hflip (reverse each row), then rot90
// counter-clockwise quarter turns (numpy np.rot90 semantics), then the colour map; train examples are
// listed in train_order. The identity is {false, 0, 0123456789, 0..n-1}.
struct Augmentation {
  bool hflip = false;
  int rot90 = 0;                                                  // 0..3
  std::array<uint8_t, 10> colours{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};  // colours[old] = new
  std::vector<uint32_t> train_order;  // a permutation of 0..n_train-1; empty means the original order

  bool is_identity() const;
};

// {"hflip": false, "rot90": 1, "colours": "0371925846", "train_order": [2, 0, 1]}.
Json augmentation_to_json(const Augmentation& a);
// The inverse of augmentation_to_json; ConfigError naming `what` for a bad field (colours must be a
// permutation of the 10 digits, train_order a permutation of 0..n-1, rot90 in 0..3).
Augmentation augmentation_from_json(const Json& j, const std::string& what);

// Geometry on one grid. [H][W] -> [H][W] for hflip; [H][W] -> [W][H] for an odd number of quarter turns.
Grid hflip(const Grid& g);
Grid rot90(const Grid& g, int k);                      // counter-clockwise, k taken mod 4 (negative k turns clockwise)
Grid apply_geometry(const Grid& g, bool flip, int k);  // flip first, then rotate
Grid recolour(const Grid& g, const std::array<uint8_t, 10>& colours);
// Full augmentation of one grid, and its inverse (to map a model's answer back to the original task).
Grid augment_grid(const Grid& g, const Augmentation& a);
Grid revert_grid(const Grid& g, const Augmentation& a);
// Applies `a` to every grid of `task` (train and test, outputs included) and reorders train examples.
// Throws ConfigError if a.train_order is not empty and not a permutation of the task's examples.
Task augment_task(const Task& task, const Augmentation& a);

// The augmentations for `--augment n` (1 <= n <= 8, else ConfigError) of one task with `n_train`
// train examples. Deterministic from (seed, task_id, variant index):
//   - variant 0 is the identity (so `--augment 1` equals no augmentation);
//   - the geometries of variants 1..n-1 are the first n-1 entries of a Fisher-Yates shuffle of the 7
//     non-identity geometries g = 1..7 (hflip = g >= 4, rot90 = g % 4), drawn from stream 0;
//   - variant v >= 1 draws from stream v: first uniform(10) < 9 (probability 0.9) keeps colour 0 fixed
//     and shuffles 1..9, else all 10 colours are shuffled; then the train order is shuffled.
// Stream s is SplitMix64(mix64(task_key + (s + 1) * 0x9E3779B97F4A7C15)) with
// task_key = mix64(seed ^ fnv1a64(task_id)); shuffles are Fisher-Yates from the last index down, with
// j = uniform(i + 1).
std::vector<Augmentation> choose_augmentations(const std::string& task_id, size_t n_train, int n, uint64_t seed);

}  // namespace fme::arc

// SplitMix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mix whose outputs pass BigCrush.
// Hashing a key through it gives independent-looking draws with no state to carry (dropout masks, MLM masking,
// held-out splits); the counter RNG's key derivation (fill/counter_rng.h) is the same function.
#pragma once
#include <cstdint>

namespace fme {

inline uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A uniform double in [0, 1) from the top 53 bits of a 64-bit hash.
inline double unit_interval(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

}  // namespace fme

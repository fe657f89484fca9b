#pragma once
// The dropout mask as a pure function of (seed, element index): every backend and
// the tests compute the same mask, forward and backward regenerate it instead of
// storing it, and no RNG state has to be checkpointed. splitmix64's finaliser
// (Steele et al. 2014) of seed + i * golden ratio; the top 24 bits against the
// threshold round(p * 2^24), so p is honoured to 6e-8.
#include <cstdint>

namespace teddy::kernels {

inline uint64_t dropout_hash(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint32_t dropout_threshold(float p) {
  const double t = static_cast<double>(p) * 16777216.0 + 0.5;
  return t <= 0 ? 0u : t >= 16777216.0 ? 16777216u : static_cast<uint32_t>(t);
}

// Element i is kept when its 24-bit draw is at or above the threshold.
inline bool dropout_keep(uint64_t seed, uint64_t i, uint32_t threshold) {
  return static_cast<uint32_t>(dropout_hash(seed, i) >> 40) >= threshold;
}

}  // namespace teddy::kernels

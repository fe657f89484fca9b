#pragma once
// Next-token sampling from logits: greedy (temperature 0), or softmax(logits / T)
// restricted by top-k and top-p (nucleus), drawn with a seeded std::mt19937_64.
#include <cstdint>
#include <random>
#include <vector>

#include "teddy/model/generate.h"

namespace teddy {

class Sampler {
 public:
  // Validates opts (throws ConfigError naming the field). Only ids < vocab_size are
  // ever returned (padded logits are ignored).
  Sampler(const SamplingOptions& opts, int vocab_size);
  int32_t sample(const float* logits);

 private:
  SamplingOptions opts_;
  int vocab_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;  // candidate ids
  std::vector<double> weight_;  // unnormalised probabilities by id
};

// Index of the largest of logits[0..n), the lowest index on ties.
int32_t argmax(const float* logits, int n);

}  // namespace teddy

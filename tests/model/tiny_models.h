#pragma once
// Small models shared by tests that need a real but tiny one: configs, labels, and
// random parameters with every gradient well above float rounding noise.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernel_check.h"
#include "teddy/model/config.h"
#include "teddy/model/model.h"

namespace teddy::test {

// A preset with a padded vocabulary (500 real ids, 512 rows), so padding is exercised.
inline ModelConfig tiny_preset(const char* preset) {
  ModelConfig c = ModelConfig::preset(preset);
  c.vocab_size = 500;
  c.padded_vocab_size = ModelConfig::pad_vocab(500);
  return c;
}

// The smallest useful GPT-2: 2 layers, 2 heads, width 16, vocabulary 61 padded to 64.
inline ModelConfig tiny_gpt2() {
  ModelConfig c = ModelConfig::for_family(Family::gpt2);
  c.vocab_size = 61;
  c.padded_vocab_size = 64;
  c.max_seq_len = 8;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_kv_head = 2;
  c.d_model = 16;
  c.d_ff = 64;
  c.validate();
  return c;
}

// Either family at toy size (LLaMA with GQA: 2 query heads over 1 kv head), 16 positions.
inline ModelConfig tiny_family(Family f) {
  ModelConfig c = ModelConfig::for_family(f);
  c.vocab_size = 61;
  c.padded_vocab_size = 64;
  c.max_seq_len = 16;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_kv_head = f == Family::gpt2 ? 2 : 1;
  c.d_model = 16;
  c.d_ff = f == Family::gpt2 ? 64 : 24;
  c.validate();
  return c;
}

// "gpt2 tied bias NH=4 NKV=2": what a test's SCOPED_TRACE needs to tell configs apart.
inline std::string config_label(const ModelConfig& c) {
  return std::string(family_name(c.family)) + (c.tie_embeddings ? " tied" : " untied") + (c.bias ? " bias" : "") +
         (c.qkv_bias ? " qkv_bias" : "") + (c.rope_scaling.type == RopeScaling::Type::llama3 ? " rope-llama3" : "") +
         " NH=" + std::to_string(c.n_head) + " NKV=" + std::to_string(c.n_kv_head);
}

// Matrices N(0, 1/fan_in) (activations of order 1 through every layer), norm weights
// 1 + N(0, 0.1), biases N(0, 0.1).
inline void fill_random_params(Model& m, uint64_t seed) {
  for (const ParamInfo& p : m.layout().params) {
    const bool bias = p.name.size() > 5 && p.name.compare(p.name.size() - 5, 5, ".bias") == 0;
    const bool norm = !bias && p.name.find("norm") != std::string::npos;
    const double sd = p.shape.size() == 2 ? 1.0 / std::sqrt(static_cast<double>(p.shape[1])) : 0.1;
    const std::vector<float> v = randn(p.numel, seed++, sd, norm ? 1.0 : 0.0);
    std::copy(v.begin(), v.end(), m.params() + p.offset);
  }
}

// Random tokens and targets in [0, vocab_size) for B rows of T, every `ignore_every`-th
// target (from the first) ignored (0: none).
struct TokenData {
  std::vector<int32_t> tokens, targets;
  // Rows row0 .. row0 + B - 1 (of T tokens each) as a Batch.
  Batch batch(int B, int T, size_t row0 = 0) const {
    Batch b;
    b.tokens = tokens.data() + row0 * T;
    b.targets = targets.data() + row0 * T;
    b.B = B;
    b.T = T;
    return b;
  }
};
inline TokenData random_token_data(const ModelConfig& c, int B, int T, uint64_t seed, int ignore_every = 0) {
  TokenData d;
  d.tokens = randint(static_cast<size_t>(B) * T, 0, c.vocab_size, seed);
  d.targets = randint(static_cast<size_t>(B) * T, 0, c.vocab_size, seed + 1);
  if (ignore_every > 0)
    for (size_t i = 0; i < d.targets.size(); i += ignore_every) d.targets[i] = kIgnoreIndex;
  return d;
}

}  // namespace teddy::test

#pragma once
// Autoregressive generation with a KV cache (and a no-cache path that recomputes
// the whole prefix each step, used to test the cache).
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "teddy/model/model.h"

namespace teddy {

struct SamplingOptions {
  float temperature = 1.0f;  // 0 means greedy (argmax)
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  uint64_t seed = 1234;
  std::vector<int32_t> stop_tokens;  // generation ends after emitting one of these
};

// Returns the generated tokens (without the prompt). on_token, if set, is called for
// each new token as it is produced and may return false to stop early. A stop token
// ends generation and is included in the result. The context is bounded: generation
// also stops once prompt + generated tokens reach max_seq_len, so at most
// max_seq_len - prompt.size() tokens come back. Throws Error on an empty prompt, a
// prompt longer than max_seq_len or ids outside the vocabulary; ConfigError on bad
// sampling options. Greedy picks the lowest id among equal maxima; padded vocabulary
// ids are never produced.
// The tokens a prompt may still generate: min(max_new_tokens, max_seq_len - prompt
// length). Throws Error, messages prefixed by `who`, on an empty prompt, a prompt longer
// than max_seq_len or a negative max_new_tokens (generate and generate_batch share it).
int generation_budget(const ModelConfig& cfg, std::span<const int32_t> prompt, int max_new_tokens,
                      const std::string& who);

std::vector<int32_t> generate(Model& model, std::span<const int32_t> prompt, int max_new_tokens,
                              const SamplingOptions& opts,
                              const std::function<bool(int32_t)>& on_token = {},
                              bool use_kv_cache = true);

}  // namespace teddy

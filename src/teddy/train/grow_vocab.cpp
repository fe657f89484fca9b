#include "teddy/train/grow_vocab.h"

#include <algorithm>
#include <string>
#include <vector>

#include "teddy/core/error.h"

namespace teddy {

Model grow_vocab(const Model& src, int new_vocab) {
  const ModelConfig& old = src.config();
  if (new_vocab < old.vocab_size)
    throw Error("grow_vocab: new vocabulary of " + std::to_string(new_vocab) + " ids is smaller than the model's " +
                std::to_string(old.vocab_size));
  ModelConfig cfg = old;
  cfg.vocab_size = new_vocab;
  cfg.padded_vocab_size = std::max(old.padded_vocab_size, ModelConfig::pad_vocab(new_vocab));
  Model dst(cfg);  // parameters start at zero
  const size_t V0 = static_cast<size_t>(old.vocab_size), V1 = static_cast<size_t>(new_vocab);
  for (const ParamInfo& p : src.layout().params) {
    const ParamInfo& q = dst.layout().find(p.name);
    const float* from = src.params() + p.offset;
    float* to = dst.params() + q.offset;
    if (p.name != "tok_emb.weight" && p.name != "lm_head.weight") {
      std::copy_n(from, p.numel, to);
      continue;
    }
    const size_t C = static_cast<size_t>(p.shape[1]);
    std::copy_n(from, V0 * C, to);  // the old ids' rows; padding rows stay zero
    std::vector<double> mean(C, 0.0);
    for (size_t r = 0; r < V0; ++r)
      for (size_t c = 0; c < C; ++c) mean[c] += from[r * C + c];
    for (size_t r = V0; r < V1; ++r)
      for (size_t c = 0; c < C; ++c) to[r * C + c] = static_cast<float>(mean[c] / static_cast<double>(V0));
  }
  return dst;
}

}  // namespace teddy

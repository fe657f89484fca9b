#include "teddy/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "teddy/core/error.h"

namespace teddy {

int32_t argmax(const float* logits, int n) {
  int32_t best = 0;
  for (int i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

Sampler::Sampler(const SamplingOptions& opts, int vocab_size) : opts_(opts), vocab_(vocab_size), rng_(opts.seed) {
  if (!(opts.temperature >= 0.0f) || !std::isfinite(opts.temperature))
    throw ConfigError("temperature: must be finite and >= 0 (got " + std::to_string(opts.temperature) + ")");
  if (opts.top_k < 0) throw ConfigError("top_k: must be >= 0 (got " + std::to_string(opts.top_k) + ")");
  if (!(opts.top_p > 0.0f && opts.top_p <= 1.0f))
    throw ConfigError("top_p: must be in (0, 1] (got " + std::to_string(opts.top_p) + ")");
  if (vocab_size <= 0) throw ConfigError("vocab_size: must be positive (got " + std::to_string(vocab_size) + ")");
  order_.resize(vocab_size);
  weight_.resize(vocab_size);
}

int32_t Sampler::sample(const float* logits) {
  if (opts_.temperature == 0.0f) return argmax(logits, vocab_);
  // Candidates ranked by logit (descending, then id): top-k and top-p cut this order.
  // Ranking by logit rather than probability keeps top_k = 1 identical to greedy.
  auto before = [logits](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  for (int i = 0; i < vocab_; ++i) order_[i] = i;
  int n = vocab_;
  if (opts_.top_k > 0 && opts_.top_k < n) {
    std::nth_element(order_.begin(), order_.begin() + opts_.top_k, order_.end(), before);
    n = opts_.top_k;
  }
  const float mx = logits[argmax(logits, vocab_)];
  const double inv_t = 1.0 / opts_.temperature;
  double total = 0.0;
  for (int i = 0; i < n; ++i) {
    const int32_t id = order_[i];
    weight_[id] = std::exp((static_cast<double>(logits[id]) - mx) * inv_t);
    total += weight_[id];
  }
  if (opts_.top_p < 1.0f) {
    // Nucleus: the smallest prefix (by rank) whose mass reaches top_p.
    std::sort(order_.begin(), order_.begin() + n, before);
    const double target = opts_.top_p * total;
    double cum = 0.0;
    int keep = 0;
    while (keep < n) {
      cum += weight_[order_[keep++]];
      if (cum >= target) break;
    }
    n = keep;
    total = cum;
  } else if (n < vocab_) {
    std::sort(order_.begin(), order_.begin() + n, before);  // a fixed order for the draw
  }
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * total;  // [0, total)
  double cum = 0.0;
  for (int i = 0; i < n; ++i) {
    cum += weight_[order_[i]];
    if (u < cum) return order_[i];
  }
  return order_[n - 1];  // rounding: u landed on the last edge
}

}  // namespace teddy

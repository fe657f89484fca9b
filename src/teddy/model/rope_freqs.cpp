#include "teddy/model/rope_freqs.h"

#include <cmath>
#include <numbers>
#include <string>

#include "teddy/core/error.h"

namespace teddy {

std::vector<double> rope_inv_freq(float theta, int head_dim, const RopeScaling& scaling) {
  TEDDY_CHECK(head_dim > 0 && head_dim % 2 == 0, "rope: head size must be even (got " + std::to_string(head_dim) + ")");
  std::vector<double> f(static_cast<size_t>(head_dim / 2));
  for (int j = 0; j < head_dim / 2; ++j) f[j] = std::pow(static_cast<double>(theta), -2.0 * j / head_dim);
  if (scaling.type == RopeScaling::Type::llama3) {
    const double factor = scaling.factor, lo = scaling.low_freq_factor, hi = scaling.high_freq_factor;
    const double old_len = scaling.original_max_position_embeddings;
    const double low_freq_wavelen = old_len / lo, high_freq_wavelen = old_len / hi;
    for (double& x : f) {
      const double wavelen = 2.0 * std::numbers::pi / x;
      if (wavelen < high_freq_wavelen) continue;
      if (wavelen > low_freq_wavelen) {
        x /= factor;
      } else {
        const double s = (old_len / wavelen - lo) / (hi - lo);
        x = (1.0 - s) * x / factor + s * x;
      }
    }
  }
  return f;
}

std::vector<double> rope_inv_freq(const ModelConfig& cfg) {
  return rope_inv_freq(cfg.rope_theta, cfg.head_dim(), cfg.rope_scaling);
}

}  // namespace teddy

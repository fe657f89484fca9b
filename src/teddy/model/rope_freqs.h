#pragma once
// RoPE's inverse-frequency table: the head_dim/2 angular speeds inv_freq[j] that the
// rotary kernels multiply by a position (angle = pos * inv_freq[j]). Computed once per
// model from (rope_theta, head_dim, rope_scaling) and handed to every RoPE call, so
// the kernels know nothing of how a model scales its frequencies.
#include <vector>

#include "teddy/model/config.h"

namespace teddy {

// In double: inv_freq[j] = theta^(-2j/head_dim), then, for RopeScaling::llama3,
// transformers' `_compute_llama3_parameters` (with wavelen = 2*pi / inv_freq[j],
// low = original_max_position_embeddings / low_freq_factor, high = ... / high_freq_factor):
//   wavelen < high:  inv_freq[j]                          (high frequencies kept)
//   wavelen > low:   inv_freq[j] / factor                  (low frequencies slowed)
//   otherwise:       (1 - s) * inv_freq[j] / factor + s * inv_freq[j],
//                    s = (original_max / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
std::vector<double> rope_inv_freq(float theta, int head_dim, const RopeScaling& scaling);
std::vector<double> rope_inv_freq(const ModelConfig& cfg);  // cfg.rope_theta, head_dim(), rope_scaling

}  // namespace teddy

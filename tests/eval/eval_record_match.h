// How an [eval.<task>] record of a run must match `teddy eval` of the checkpoint at its
// step (tests/eval/test_training_eval.cpp, tests/distributed/test_pretrain_dist.cpp).
#pragma once

#include <cmath>
#include <string>

namespace teddy::test {

// Counts and accuracies: exactly. Perplexities are exp(mean per-token NLL); each token's
// log-probability is an fp32 result, and on OpenBLAS's Haswell kernels a row's
// log-probability can round an ulp apart between the run's evaluation and a standalone
// one (other row groupings in the GEMMs). The mean of such values moves by at most the
// largest per-token relative change: a few eps32 (4 * 2^-24) in the log domain.
// Seen: 1.6e-11 relative on bits_per_byte.
inline bool eval_metric_matches(const std::string& task, const std::string& name, double got, double ref) {
  if (task != "perplexity") return got == ref;
  const bool log_domain = name != "bits_per_byte";
  const double a = log_domain ? std::log(got) : got, b = log_domain ? std::log(ref) : ref;
  return std::abs(a - b) <= 4 * 0x1p-24 * std::abs(b);
}

}  // namespace teddy::test

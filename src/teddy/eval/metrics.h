#pragma once
// The metrics, as lm-evaluation-harness and HumanEval's harness define them.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace teddy {

// numpy's argmax: the first index of the largest value. Requires a non-empty span.
size_t argmax_first(std::span<const double> v);

// Characters of a UTF-8 string (code points): lm-eval's acc_norm divides each
// choice's log-likelihood by Python's len(choice), its length in characters (equal to
// the byte length for ASCII text such as ARC's).
size_t utf8_length(std::string_view s);

// Multiple choice: pred = argmax of the log-likelihoods (acc); pred_norm = argmax of
// log-likelihood / utf8_length(choice text) (acc_norm). choices: the choice texts
// without the leading space.
struct McPrediction {
  size_t pred = 0, pred_norm = 0;
};
McPrediction mc_predict(std::span<const double> loglik, std::span<const std::string> choices);

// GSM8K, lm-eval's two filters on a generated answer:
//   strict:   the first "#### <number>" (regex "#### (\-?[0-9\.\,]+)");
//   flexible: the last number (regex "(-?[$0-9.,]{2,})|(-?[0-9]+)").
// Both return "[invalid]" when nothing matches. gsm8k_extract: strict, else flexible
// (what `teddy eval gsm8k` reports as exact_match).
std::string gsm8k_strict(std::string_view text);
std::string gsm8k_flexible(std::string_view text);
std::string gsm8k_extract(std::string_view text);
// gsm8k_cot's strict filter: the first "The answer is <number>" followed by any one
// character (regex "The answer is (\-?[0-9\.\,]+)."); exact_match for gsm8k_cot is
// this, else the flexible filter.
std::string gsm8k_cot_strict(std::string_view text);
std::string gsm8k_cot_extract(std::string_view text);
// lm-eval's exact_match normalisation for GSM8K: remove ",", "$", everything up to
// the last "#### ", one trailing "."; lower case. A reference "...#### 1,234"
// becomes "1234".
std::string gsm8k_normalize(std::string_view s);
bool gsm8k_match(std::string_view extracted, std::string_view reference_answer);

// The unbiased pass@k estimator (Chen et al. 2021) for n samples of which c pass:
// 1 - C(n-c, k) / C(n, k), computed stably as 1 - prod_{i=n-c+1..n} (1 - k/i);
// 1 when n - c < k. Requires 0 <= c <= n and 1 <= k <= n.
double pass_at_k(int64_t n, int64_t c, int64_t k);

// Standard error of a mean of per-sample values: sample standard deviation (n - 1)
// over sqrt(n), as lm-eval reports <metric>_stderr. 0 for fewer than 2 samples.
double mean_stderr(std::span<const double> v);

}  // namespace teddy

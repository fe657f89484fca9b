#include "teddy/eval/metrics.h"

#include <cctype>
#include <cmath>
#include <regex>

#include "teddy/core/error.h"

namespace teddy {

size_t argmax_first(std::span<const double> v) {
  TEDDY_CHECK(!v.empty(), "argmax of an empty list");
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // count every byte that starts a character
  return n;
}

McPrediction mc_predict(std::span<const double> loglik, std::span<const std::string> choices) {
  TEDDY_CHECK(loglik.size() == choices.size() && !loglik.empty(), "mc_predict: one log-likelihood per choice");
  std::vector<double> norm(loglik.size());
  for (size_t i = 0; i < loglik.size(); ++i)
    norm[i] = loglik[i] / static_cast<double>(std::max<size_t>(1, utf8_length(choices[i])));
  return {argmax_first(loglik), argmax_first(norm)};
}

std::string gsm8k_strict(std::string_view text) {
  static const std::regex re("#### (\\-?[0-9\\.\\,]+)");
  std::match_results<std::string_view::const_iterator> m;
  if (std::regex_search(text.begin(), text.end(), m, re)) return m[1].str();
  return "[invalid]";
}

std::string gsm8k_flexible(std::string_view text) {
  static const std::regex re("(-?[$0-9.,]{2,})|(-?[0-9]+)");
  std::string last = "[invalid]";
  for (std::regex_iterator<std::string_view::const_iterator> it(text.begin(), text.end(), re), end; it != end; ++it)
    last = (*it)[1].matched ? (*it)[1].str() : (*it)[2].str();
  return last;
}

std::string gsm8k_extract(std::string_view text) {
  std::string s = gsm8k_strict(text);
  return s == "[invalid]" ? gsm8k_flexible(text) : s;
}

std::string gsm8k_cot_strict(std::string_view text) {
  static const std::regex re("The answer is (\\-?[0-9\\.\\,]+).");
  std::match_results<std::string_view::const_iterator> m;
  if (std::regex_search(text.begin(), text.end(), m, re)) return m[1].str();
  return "[invalid]";
}

std::string gsm8k_cot_extract(std::string_view text) {
  std::string s = gsm8k_cot_strict(text);
  return s == "[invalid]" ? gsm8k_flexible(text) : s;
}

std::string gsm8k_normalize(std::string_view in) {
  // lm-eval applies its regexes_to_ignore in order: ",", "\$", "(?s).*#### ", "\.$".
  std::string s;
  for (char c : in)
    if (c != ',' && c != '$') s += c;
  const size_t h = s.rfind("#### ");  // greedy (?s).* reaches the last one
  if (h != std::string::npos) s = s.substr(h + 5);
  if (!s.empty() && s.back() == '.') s.pop_back();
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool gsm8k_match(std::string_view extracted, std::string_view reference_answer) {
  return gsm8k_normalize(extracted) == gsm8k_normalize(reference_answer);
}

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  if (c < 0 || c > n || k < 1 || k > n)
    throw Error("pass@k needs 0 <= c <= n and 1 <= k <= n (got n=" + std::to_string(n) + " c=" + std::to_string(c) +
                " k=" + std::to_string(k) + ")");
  if (n - c < k) return 1.0;
  double prod = 1.0;
  for (int64_t i = n - c + 1; i <= n; ++i) prod *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - prod;
}

double mean_stderr(std::span<const double> v) {
  if (v.size() < 2) return 0.0;
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return std::sqrt(ss / static_cast<double>(v.size() - 1)) / std::sqrt(static_cast<double>(v.size()));
}

}  // namespace teddy

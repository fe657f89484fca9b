#pragma once
// Mixtures: how often each source is drawn. Weights are by tokens: every training
// window (T+1 tokens) comes from source s with probability w_s / sum(w), so over a
// run source s supplies about w_s / sum(w) of the tokens whatever its size.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace teddy {

class Mixture {
 public:
  Mixture() = default;
  // Throws ConfigError if empty, a name repeats or is empty, or a weight is not a
  // finite number > 0. Weights are normalised to sum to 1.
  explicit Mixture(std::vector<std::pair<std::string, double>> weights);

  // Parses "prose=0.6,code=0.3,multilingual=0.1" (the --mix flag).
  static Mixture parse(const std::string& spec);

  size_t size() const { return names_.size(); }
  bool empty() const { return names_.empty(); }
  const std::string& name(size_t i) const { return names_[i]; }
  double weight(size_t i) const { return weights_[i]; }  // normalised
  const std::vector<std::string>& names() const { return names_; }
  // Index of a source by name, or -1.
  int find(const std::string& name) const;

  // Picks a source from a uniform 64-bit random number (inverse CDF).
  size_t sample(uint64_t random_bits) const;

  std::string to_string() const;  // "prose=0.6,code=0.3,..."

 private:
  std::vector<std::string> names_;
  std::vector<double> weights_, cdf_;
};

}  // namespace teddy

#include "teddy/data/mixture.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "teddy/core/error.h"

namespace teddy {

namespace {
std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
}  // namespace

Mixture::Mixture(std::vector<std::pair<std::string, double>> weights) {
  if (weights.empty()) throw ConfigError("mixture: at least one source with a weight is required");
  double total = 0;
  for (const auto& [name, w] : weights) {
    if (name.empty()) throw ConfigError("mixture: empty source name");
    if (!(w > 0) || !std::isfinite(w))
      throw ConfigError("mixture: weight of \"" + name + "\" must be a finite number > 0 (got " + number_text(w) + ")");
    for (const auto& n : names_)
      if (n == name) throw ConfigError("mixture: source \"" + name + "\" is listed twice");
    names_.push_back(name);
    weights_.push_back(w);
    total += w;
  }
  double acc = 0;
  for (auto& w : weights_) {
    w /= total;
    acc += w;
    cdf_.push_back(acc);
  }
  cdf_.back() = 1.0;  // rounding must not leave a gap at the top
}

Mixture Mixture::parse(const std::string& spec) {
  std::vector<std::pair<std::string, double>> out;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t end = spec.find(',', pos);
    if (end == std::string::npos) end = spec.size();
    const std::string item = spec.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) throw ConfigError("mixture: expected name=weight (got \"" + item + "\")");
    const std::string value = item.substr(eq + 1);
    char* stop = nullptr;
    const double w = std::strtod(value.c_str(), &stop);
    if (value.empty() || *stop != '\0')
      throw ConfigError("mixture: weight of \"" + item.substr(0, eq) + "\" is not a number (got \"" + value + "\")");
    out.emplace_back(item.substr(0, eq), w);
  }
  return Mixture(std::move(out));
}

int Mixture::find(const std::string& name) const {
  for (size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) return static_cast<int>(i);
  return -1;
}

size_t Mixture::sample(uint64_t random_bits) const {
  // 53 random bits -> uniform double in [0, 1).
  const double u = static_cast<double>(random_bits >> 11) * 0x1.0p-53;
  for (size_t i = 0; i + 1 < cdf_.size(); ++i)
    if (u < cdf_[i]) return i;
  return cdf_.size() - 1;
}

std::string Mixture::to_string() const {
  std::string s;
  for (size_t i = 0; i < names_.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", weights_[i]);
    s += (i ? "," : "") + names_[i] + "=" + buf;
  }
  return s;
}

}  // namespace teddy

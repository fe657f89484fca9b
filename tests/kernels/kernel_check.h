#pragma once
// Shared helpers for kernel tests: random data, closeness with dtype-tied
// tolerances, and finite-difference gradient checks in double precision.
//
// Pattern (see test_layernorm.cpp): the reference kernel is a template over the
// scalar type (kernels/ref/<op>.h); its double instantiation is checked against
// central finite differences of L = sum(out * w) for a random w (so dout = w),
// and the fast cpu kernel is compared with the float reference over odd sizes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <sstream>
#include <vector>

namespace teddy::test {

constexpr double kEpsF32 = 1.1920928955078125e-07;  // 2^-23
constexpr double kEpsBF16 = 0.0078125;               // 2^-7
constexpr double kEpsF16 = 0.0009765625;             // 2^-10

// Tolerance for a value computed by summing `reduction_len` float terms: rounding
// error grows like sqrt(K) for random-sign sums; 16 is the safety factor.
inline double rtol_for(double eps, int64_t reduction_len) {
  return 16.0 * eps * std::sqrt(static_cast<double>(std::max<int64_t>(reduction_len, 1)));
}

template <class T = float>
std::vector<T> randn(size_t n, uint64_t seed, double scale = 1.0, double mean = 0.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(mean, scale);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(d(rng));
  return v;
}

inline std::vector<int32_t> randint(size_t n, int32_t lo, int32_t hi_exclusive, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(lo, hi_exclusive - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

template <class To, class From>
std::vector<To> cast(const std::vector<From>& v) {
  return std::vector<To>(v.begin(), v.end());
}

// Passes when |got - want| <= atol + rtol*|want| everywhere; reports the worst element.
template <class A, class B>
::testing::AssertionResult all_close(const A* got, const B* want, size_t n, double rtol, double atol) {
  double worst = 0.0;
  size_t wi = 0;
  for (size_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
    if (std::isnan(g) != std::isnan(w)) return ::testing::AssertionFailure() << "NaN mismatch at " << i;
    const double ratio = std::fabs(g - w) / (atol + rtol * std::fabs(w));
    if (ratio > worst) { worst = ratio; wi = i; }
  }
  if (worst <= 1.0) return ::testing::AssertionSuccess();
  std::ostringstream os;
  os << "element " << wi << " of " << n << ": got " << static_cast<double>(got[wi]) << ", want "
     << static_cast<double>(want[wi]) << " (rtol " << rtol << ", atol " << atol << ", "
     << worst << "x over)";
  return ::testing::AssertionFailure() << os.str();
}
template <class A, class B>
::testing::AssertionResult all_close(const std::vector<A>& got, const std::vector<B>& want, double rtol,
                                     double atol) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  return all_close(got.data(), want.data(), got.size(), rtol, atol);
}

// ||a - b|| / ||b||.
template <class A, class B>
double rel_error(const A* a, const B* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    num += d * d;
    den += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Central finite differences in double: for each checked index i of x,
// (loss(x + h e_i) - loss(x - h e_i)) / 2h must match analytic[i] within
// tol * max(1, |analytic[i]|). Checks every index when x.size() <= max_checks,
// otherwise an evenly spread sample. `loss` reads x by reference.
inline ::testing::AssertionResult fd_check(const std::function<double()>& loss, std::vector<double>& x,
                                           const std::vector<double>& analytic, const char* what,
                                           double h = 1e-6, double tol = 1e-6, size_t max_checks = 256) {
  if (analytic.size() != x.size()) return ::testing::AssertionFailure() << what << ": size mismatch";
  const size_t n = x.size();
  const size_t stride = n <= max_checks ? 1 : n / max_checks;
  for (size_t i = 0; i < n; i += stride) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double lp = loss();
    x[i] = x0 - h;
    const double lm = loss();
    x[i] = x0;
    const double fd = (lp - lm) / (2 * h);
    if (std::fabs(fd - analytic[i]) > tol * std::max(1.0, std::fabs(analytic[i])))
      return ::testing::AssertionFailure() << what << "[" << i << "]: finite difference " << fd
                                           << ", backward " << analytic[i];
  }
  return ::testing::AssertionSuccess();
}

// sum(out * w) in double: the scalar loss whose gradient w.r.t. out is w.
template <class T>
double dot_loss(const std::vector<T>& out, const std::vector<double>& w) {
  double s = 0;
  for (size_t i = 0; i < out.size(); ++i) s += static_cast<double>(out[i]) * w[i];
  return s;
}

}  // namespace teddy::test

#pragma once
// Shared helpers for kernel tests: random data, closeness with dtype-tied
// tolerances, and finite-difference gradient checks in double precision.
//
// Pattern (see test_layernorm.cpp): the reference kernel is a template over the
// scalar type (kernels/ref/<op>.h); its double instantiation is checked against
// central finite differences of L = sum(out * w) for a random w (so dout = w),
// and the fast cpu kernel is compared with the float reference over odd sizes.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <random>
#include <sstream>
#include <string>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace teddy::test {

constexpr double kEpsF32 = 1.1920928955078125e-07;  // 2^-23
constexpr double kEpsBF16 = 0.0078125;               // 2^-7
constexpr double kEpsF16 = 0.0009765625;             // 2^-10
constexpr double kEpsF64 = 2.220446049250313e-16;    // 2^-52

// Tolerance for a value computed by summing `reduction_len` float terms: rounding
// error grows like sqrt(K) for random-sign sums; 16 is the safety factor.
inline double rtol_for(double eps, int64_t reduction_len) {
  return 16.0 * eps * std::sqrt(static_cast<double>(std::max<int64_t>(reduction_len, 1)));
}

// With TEDDY_BOUNDS set in the environment, prints "bound-used <what> <fraction>": how
// much of a derived tolerance a result used (1 = at the bound), for collecting the
// largest values across CPUs, BLAS kernels and thread counts (docs/TESTING.md).
inline void note_used(const std::string& what, double fraction) {
  if (std::getenv("TEDDY_BOUNDS")) std::printf("bound-used %s %.3g\n", what.c_str(), fraction);
}

// EXPECT_LE(err, bound), noted as above.
inline void expect_within(double err, double bound, const std::string& what) {
  EXPECT_LE(err, bound) << what;
  note_used(what, err / bound);
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

// n floats one element into their storage, so the data is never 16-byte aligned.
struct Misaligned {
  std::vector<float> store;
  explicit Misaligned(const std::vector<float>& v) : store(v.size() + 1) {
    std::copy(v.begin(), v.end(), store.begin() + 1);
  }
  explicit Misaligned(size_t n) : store(n + 1) {}
  float* p() { return store.data() + 1; }
  std::vector<float> vec() const { return {store.begin() + 1, store.end()}; }
};

// max |v[i]| in double (0 for an empty vector).
template <class T>
double max_abs(const std::vector<T>& v) {
  double m = 0;
  for (T x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}

// |got - want| <= rtol * (|want| + max|want|): relative, with an absolute floor at the
// tensor's scale (outputs, dot products and gradients can cancel to near zero).
inline ::testing::AssertionResult close_scaled(const std::vector<float>& got, const std::vector<float>& want,
                                               double rtol) {
  return all_close(got, want, rtol, rtol * std::max(max_abs(want), 1e-30));
}

// |v| elementwise: the operands whose product the reference computes as `mag` below.
inline std::vector<float> abs_of(const std::vector<float>& v) {
  std::vector<float> a(v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
  return a;
}

// got vs the float reference `want` of a product summed over K terms (plus, for +=,
// what the buffer held). GEMMs on fp32 inputs: close_scaled at rtol_for(fp32, K). GEMMs
// that round their inputs to bf16 (bf16_inputs) add the rounding's worst case
// elementwise: each input is off by at most u = 2^-8 relative (round to nearest, 8-bit
// significand), so each product a*b by (2u + u^2)|a||b|, and the sum by
// (2u + u^2) * mag, mag = sum_k |a_k||b_k| (the product of the absolute values,
// computed by the reference); the fp32 accumulation term stays as for fp32.
inline ::testing::AssertionResult product_close(bool bf16_inputs, const std::vector<float>& got,
                                                const std::vector<float>& want, const std::vector<float>& mag, int K) {
  const double rtol = rtol_for(kEpsF32, K);
  if (!bf16_inputs) return close_scaled(got, want, rtol);
  const double u = kEpsBF16 / 2, floor = rtol * std::max(max_abs(want), 1e-30);
  for (size_t i = 0; i < got.size(); ++i) {
    const double bound = (2 * u + u * u) * mag[i] + rtol * std::fabs(want[i]) + floor;
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= bound))
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", want " << want[i]
                                           << ", bound " << bound << " (bf16 inputs, K=" << K << ")";
  }
  return ::testing::AssertionSuccess();
}

// Backward += check: each gradient in `twice` (backward run twice onto zeros) is
// 2x the same gradient in `once` (run once), within close_scaled(rtol).
// Callers pass rtol = 4 eps: a kernel that adds its finished per-element result to the
// output once gives twice == 2 once exactly (x + x is exact); one that adds B partial
// sums separately (e.g. GEMM K-blocks) rounds B times against sums of at most the
// tensor's scale, <= B eps/2 each: 4 eps covers B <= 4 (these tests' sizes have one).
inline void expect_doubled(const std::vector<std::vector<float>>& once, const std::vector<std::vector<float>>& twice,
                           double rtol) {
  for (size_t t = 0; t < once.size(); ++t) {
    std::vector<float> doubled(once[t]);
    for (float& v : doubled) v *= 2;
    EXPECT_TRUE(close_scaled(twice[t], doubled, rtol)) << "gradient " << t;
  }
}

// The parts joined end to end (several gradients compared as one vector).
template <class T>
std::vector<T> concat(std::initializer_list<std::vector<T>> parts) {
  std::vector<T> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

// Calls fn(threads) with OpenMP set to each thread count in turn, then restores the
// caller's thread count.
template <class F>
void for_each_thread_count(std::initializer_list<int> counts, F&& fn) {
  const int saved = omp_get_max_threads();
  for (int threads : counts) {
    omp_set_num_threads(threads);
    fn(threads);
  }
  omp_set_num_threads(saved);
}

// fn()'s result under each OpenMP thread count, in order (for determinism checks:
// compare every entry with the first).
template <class F>
auto results_per_thread_count(std::initializer_list<int> counts, F&& fn) {
  std::vector<decltype(fn())> results;
  for_each_thread_count(counts, [&](int) { results.push_back(fn()); });
  return results;
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
// The defaults (h = tol = 1e-6): the truncation error is h^2 |d3 loss| / 6, below 1e-6
// for third derivatives up to 6e6, and rounding costs ~2 eps64 |loss| / 2h =
// 2.2e-10 |loss|, below 1e-6 for |loss| up to 4e3 (these tests' losses are sums of at
// most a few thousand O(1) terms); a wrong gradient term is off by O(|analytic|).
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

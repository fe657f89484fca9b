// sum_squares: each backend (ref: the float reference) vs a double loop over odd sizes (below
// and above the parallel threshold); bitwise repeatable for a fixed thread
// count; close across thread counts.
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/backend_test.h"
#include "kernels/kernel_check.h"

namespace {

using namespace teddy::test;

class SumSquaresBackend : public BackendTest {};
TEDDY_BACKEND_SUITE(SumSquaresBackend);

double double_loop(const std::vector<float>& x) {
  double s = 0;
  for (float v : x) s += static_cast<double>(v) * static_cast<double>(v);
  return s;
}

TEST_P(SumSquaresBackend, MatchesDoubleLoop) {
  for (int64_t n : {0, 1, 7, 1000, 65537, 1 << 20, (1 << 21) + 17}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const auto x = randn(n, 1 + n, 2.0, 0.1);
    const double want = double_loop(x);
    // Backend and loop both accumulate exact float squares in double: only the order differs,
    // over n positive terms (no cancellation): rtol_for at eps64.
    const double tol = rtol_for(kEpsF64, n + 1) * want;
    EXPECT_NEAR(kb->sum_squares(x.data(), n), want, tol);
  }
}

TEST_P(SumSquaresBackend, TinyAndHugeValuesDoNotOverflowOrFlush) {
  // Squares of 1e-30 underflow float but not double; 1e30^2 overflows float only.
  const std::vector<float> x = {1e-30f, 1e30f, -1e30f, 3.0f};
  const double want = 1e-60 + 2e60 + 9.0;
  // want is from the decimal literals: 1e30f is 1e30 to within u = eps/2, its square to
  // within eps; the sum itself is exact to eps64.
  EXPECT_NEAR(kb->sum_squares(x.data(), 4), want, 2 * kEpsF32 * want);
  const std::vector<float> tiny(100, 1e-25f);
  EXPECT_GT(kb->sum_squares(tiny.data(), 100), 0.0);
}

TEST_P(SumSquaresBackend, DeterministicForAFixedThreadCount) {
  const int64_t n = (1 << 22) + 3;
  const auto x = randn(n, 42);
  const double want = double_loop(x);
  for_each_thread_count({1, 2, 3}, [&](int threads) {
    const double a = kb->sum_squares(x.data(), n), b = kb->sum_squares(x.data(), n);
    EXPECT_EQ(a, b) << "threads=" << threads;
    EXPECT_NEAR(a, want, rtol_for(kEpsF64, n) * want) << "threads=" << threads;  // as in MatchesDoubleLoop
  });
}

}  // namespace

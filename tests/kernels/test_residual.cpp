// Residual add and accumulate: each backend vs reference over odd sizes (both sides of the
// OpenMP threshold) and misaligned pointers; accumulate adds (twice = 2x).
#include <vector>

#include "kernels/backend_test.h"
#include "kernels/kernel_check.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/ref/residual.h"

namespace {

using namespace teddy::test;
namespace kr = teddy::kernels::ref;

class ResidualBackend : public BackendTest {};
TEDDY_BACKEND_SUITE(ResidualBackend);

TEST(Residual, ReferenceForwardIsTheSum) {
  const std::vector<double> a = {1.0, -2.5, 0.0}, b = {0.25, 2.5, -3.0}, want = {1.25, 0.0, -3.0};
  std::vector<double> out(3);
  kr::residual_forward_t<double>(out.data(), a.data(), b.data(), 3);
  EXPECT_EQ(out, want);
  std::vector<double> dst = {1.0, 1.0, 1.0};
  kr::accumulate_t<double>(dst.data(), b.data(), 3);
  EXPECT_EQ(dst, (std::vector<double>{1.25, 3.5, -2.0}));
}

TEST_P(ResidualBackend, MatchesReference) {
  for (int64_t n : {1, 3, 17, 64, 1023, 200003}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const auto a = randn(n, 80 + n), b = randn(n, 81);
    std::vector<float> out_r(n), acc_r = a;
    kr::residual_forward(out_r.data(), a.data(), b.data(), n);
    kr::accumulate(acc_r.data(), b.data(), n);
    Misaligned out_c(n), acc_c(a), am(a), bm(b);
    kb->residual_forward(out_c.p(), am.p(), bm.p(), n);
    kb->accumulate(acc_c.p(), bm.p(), n);
    // One correctly rounded addition each: identical bits.
    EXPECT_EQ(out_c.vec(), out_r);
    EXPECT_EQ(acc_c.vec(), acc_r);
  }
}

TEST_P(ResidualBackend, AccumulateAddsEachCall) {
  const int64_t n = 100003;
  const auto src = randn(n, 90);
  std::vector<float> once(n), twice(n);
  kb->accumulate(once.data(), src.data(), n);
  kb->accumulate(twice.data(), src.data(), n);
  kb->accumulate(twice.data(), src.data(), n);
  for (float& v : once) v *= 2;  // x + x == 2x exactly
  EXPECT_EQ(twice, once);
}

TEST_P(ResidualBackend, InPlaceForward) {
  // out may alias a (x = x + f(x) in the residual stream).
  const int64_t n = 70001;
  const auto a = randn(n, 91), b = randn(n, 92);
  std::vector<float> want(n), x = a;
  kr::residual_forward(want.data(), a.data(), b.data(), n);
  kb->residual_forward(x.data(), x.data(), b.data(), n);
  EXPECT_EQ(x, want);
}

}  // namespace
